// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Doorbells and MSI routes against a real KVM VM: what the tables say is
// registered is what the kernel has registered, rebinding moves the
// registration, conflicts are refused without breaking anything, and MSIs
// signalled through irqfds reach a vCPU's local APIC.

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Kvm, type VmFd } from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import { SharedDoorbells } from './doorbells.js';
import { MSI_ROUTES, MsiRoutes } from './msi-routes.js';

function vmFor(t: TestContext): VmFd {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  vm.createIrqchip();
  t.after(() => {
    vm.close();
    kvm.close();
  });
  return vm;
}

/** Is (addr, datamatch) free in the kernel? Probes by registering a scratch eventfd there. */
function kernelFree(vm: VmFd, space: 'io' | 'mmio', addr: number, size: number, datamatch: number): boolean {
  const fd = libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC);
  const opts = { pio: space === 'io', datamatch: BigInt(datamatch) };
  try {
    vm.ioeventfd(fd, BigInt(addr), size, opts);
  } catch (e) {
    assert.match((e as Error).message, /EEXIST/);
    libc.close(fd);
    return false;
  }
  vm.ioeventfd(fd, BigInt(addr), size, { ...opts, deassign: true });
  libc.close(fd);
  return true;
}

describe('doorbells', () => {
  it('registers bindings with the kernel, moves them on rebind and drops them on unbind', (t) => {
    const vm = vmFor(t);
    const main = new SharedDoorbells(SharedDoorbells.createBuffer(), vm, [], true);
    t.after(() => main.close());
    const db = main.doorbell('blk0', 0);
    assert.ok(db);
    const legacy = { space: 'io' as const, addr: 0xc010, size: 2 as const, datamatch: 0 };
    const modern = { space: 'mmio' as const, addr: 0x1_0000_3000, size: 2 as const, datamatch: 0 };
    assert.equal(db.bind([legacy, modern]), 2);
    assert.equal(kernelFree(vm, 'io', 0xc010, 2, 0), false);
    assert.equal(kernelFree(vm, 'mmio', 0x1_0000_3000, 2, 0), false);
    assert.deepEqual(main.bindings(0), [legacy, modern]);
    // Binding the same again changes nothing (no EEXIST from re-registering).
    assert.equal(db.bind([legacy, modern]), 2);

    const moved = { ...legacy, addr: 0xc050 };
    assert.equal(db.bind([moved]), 1);
    assert.equal(kernelFree(vm, 'io', 0xc010, 2, 0), true, 'the old port is released');
    assert.equal(kernelFree(vm, 'mmio', 0x1_0000_3000, 2, 0), true, 'the old address is released');
    assert.equal(kernelFree(vm, 'io', 0xc050, 2, 0), false);

    assert.equal(db.bind([]), 0);
    assert.equal(kernelFree(vm, 'io', 0xc050, 2, 0), true);
    assert.deepEqual(main.bindings(0), []);
  });

  it('a worker finds the main thread allocations and shares the registrations', (t) => {
    const vm = vmFor(t);
    const main = new SharedDoorbells(SharedDoorbells.createBuffer(), vm, [], true);
    t.after(() => main.close());
    main.doorbell('net0', 0);
    main.doorbell('net0', 1);
    const worker = new SharedDoorbells(main.sab, vm, main.allocations, false, true);
    assert.equal(worker.doorbell('net0', 2), undefined, 'workers do not allocate');
    let rung = 0;
    const w1 = worker.doorbell('net0', 1);
    assert.ok(w1);
    w1.serve(() => rung++);
    w1.bind([{ space: 'io', addr: 0xc110, size: 2, datamatch: 1 }]);
    // The main thread sees the worker's binding and can undo it.
    assert.equal(main.bindings(1).length, 1);
    main.doorbell('net0', 1)?.bind([]);
    assert.equal(kernelFree(vm, 'io', 0xc110, 2, 1), true);
    worker.handler(1)?.();
    assert.equal(rung, 1);
    assert.equal(main.handler(1), undefined, 'only the serving thread keeps handlers');
  });

  it('two doorbells on one address (a guest overlapping BARs): the second is refused, the first keeps working', (t) => {
    const vm = vmFor(t);
    const main = new SharedDoorbells(SharedDoorbells.createBuffer(), vm, [], true);
    t.after(() => main.close());
    const a = main.doorbell('a', 0);
    const b = main.doorbell('b', 0);
    const at = { space: 'io' as const, addr: 0xd000, size: 2 as const, datamatch: 0 };
    assert.equal(a?.bind([at]), 1);
    assert.equal(b?.bind([at]), 0);
    assert.deepEqual(main.bindings(1), []);
    assert.equal(kernelFree(vm, 'io', 0xd000, 2, 0), false);
    // When the guest moves the first away, the second can take the address.
    assert.equal(a?.bind([]), 0);
    assert.equal(b?.bind([at]), 1);
  });
});

// Local APIC register offsets (kvm_lapic_state is the 1 KiB register page).
const APIC_SVR = 0xf0;
const APIC_IRR = 0x200;

function irr(lapic: Uint8Array, vector: number): boolean {
  const reg = new DataView(lapic.buffer, lapic.byteOffset).getUint32(APIC_IRR + (vector >> 5) * 0x10, true);
  return ((reg >>> (vector & 31)) & 1) !== 0;
}

describe('MSI routes', () => {
  it('delivers MSIs through irqfds, one route per distinct message, and falls back when full', (t) => {
    const vm = vmFor(t);
    const vcpu = vm.createVcpu(0);
    t.after(() => vcpu.close());
    const lapic = vcpu.getLapic();
    const dv = new DataView(lapic.buffer, lapic.byteOffset);
    dv.setUint32(APIC_SVR, dv.getUint32(APIC_SVR, true) | 0x1ff, true); // software-enable, spurious vector 0xff
    vcpu.setLapic(lapic);

    const routes = new MsiRoutes(MsiRoutes.createBuffer(), vm);
    t.after(() => routes.clear());
    const addr = 0xfee0_0000n; // APIC ID 0, physical destination
    routes.signal(addr, 0x41);
    assert.equal(routes.size, 1);
    assert.ok(irr(vcpu.getLapic(), 0x41), 'vector 0x41 pending in the IRR');
    routes.signal(addr, 0x41);
    assert.equal(routes.size, 1, 'the same message reuses its route');

    // Another thread's instance over the same table finds the route.
    const other = new MsiRoutes(routes.sab, vm);
    other.signal(addr, 0x42);
    assert.equal(routes.size, 2);
    assert.ok(irr(vcpu.getLapic(), 0x42));

    // A guest inventing messages fills the table; later ones still arrive (KVM_SIGNAL_MSI).
    for (let i = 0; i < MSI_ROUTES; i++) routes.signal(addr | BigInt((i + 1) << 2), 0x50);
    assert.equal(routes.size, MSI_ROUTES);
    assert.ok(routes.overflowed > 0);
    routes.signal(addr, 0x60);
    assert.ok(irr(vcpu.getLapic(), 0x60), 'a message past the table still reaches the APIC');

    routes.clear();
    assert.equal(routes.size, 0);
    routes.signal(addr, 0x43);
    assert.equal(routes.size, 1, 'routes are made again after a clear');
    assert.ok(irr(vcpu.getLapic(), 0x43));
  });
});
