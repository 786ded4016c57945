// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// reset-kbd.rom: resets by pulsing the 8042 keyboard controller's reset
// line (command 0xFE to port 0x64) until it has booted three times.

#include "power.h"

.macro kbd_reset
        movb    $0xfe, %al
        outb    %al, $0x64
.endm

        POWER_GUEST kbd_reset
