#!/usr/bin/env python3
"""Which kernels' machine code differs between two cubins (ELF .text.<kernel> sections, by hash).

A refactor of kernels already verified on a GPU can be checked without one: rebuild and compare the
old cubin with the new; kernels whose code is byte-identical behave identically.
  python3 native/tools/cubin_text_diff.py OLD.cubin native/build/kernels/sm_90.cubin
Prints the kernel counts and the differing names; exits 1 when a kernel present in both differs.
"""
import hashlib
import struct
import sys


def kernel_texts(path):
    b = open(path, 'rb').read()
    if b[:4] != b'\x7fELF':
        sys.exit(f'{path}: not an ELF file')
    shoff, = struct.unpack_from('<Q', b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', b, 0x3A)
    headers = [struct.unpack_from('<IIQQQQ', b, shoff + i * shentsize) for i in range(shnum)]
    strings = headers[shstrndx][4]
    out = {}
    for name, kind, _flags, _addr, off, size in headers:
        n = b[strings + name:b.index(b'\0', strings + name)].decode()
        if n.startswith('.text.'):
            out[n[len('.text.'):]] = hashlib.sha256(b[off:off + size] if kind != 8 else b'').hexdigest()
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = kernel_texts(sys.argv[1]), kernel_texts(sys.argv[2])
    changed = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    print(f'{len(old)} kernels before, {len(new)} after; only before: {sorted(old.keys() - new.keys())}; '
          f'only after: {sorted(new.keys() - old.keys())}; changed: {changed}')
    sys.exit(1 if changed else 0)


if __name__ == '__main__':
    main()
