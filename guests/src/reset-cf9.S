// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// reset-cf9.rom: resets through the PIIX reset control register (port
// 0xCF9, value 0x06: hard reset) until it has booted three times.

#include "power.h"

.macro cf9_reset
        movw    $0xcf9, %dx
        movb    $0x06, %al
        outb    %al, %dx
.endm

        POWER_GUEST cf9_reset
