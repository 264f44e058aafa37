"""The extension's allocator (src/alloc.rs): blocks from 4 MiB up ask the kernel for
transparent huge pages, which a 2048³ product needs to keep up with MKL (gemm's strided
walks over 4 KiB pages miss the TLB)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process (numpy advises its own large arrays, so none are made): the bytes of
# memory mappings the kernel marks huge-page advised (VmFlags "hg"), before and after a
# flux_rs tensor of 8 MiB, and a product of two such tensors.
CHILD = r"""
import flux_rs as fx

def advised():
    total, size = 0, 0
    with open("/proc/self/smaps") as fh:
        for line in fh:
            if line.startswith("Size:"):
                size = int(line.split()[1]) * 1024
            elif line.startswith("VmFlags:") and "hg" in line.split()[1:]:
                total += size
    return total

before = advised()
x = fx.ones32((1024, 2048))
after = advised()
y = x.T @ x[:, :1024]  # a 2048×1024 result, allocated per call
print(before, after, advised(), float(y[0, 0]), tuple(y.shape))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/sys/kernel/mm/transparent_hugepage"),
                    reason="transparent huge pages are a Linux kernel feature")
def test_large_blocks_are_advised_to_huge_pages():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    assert r.returncode == 0, r.stderr[-3000:]
    before, after, final, y00, shape = r.stdout.split(maxsplit=4)
    # the 8 MiB block holds at least three whole 2 MiB pages, wherever it starts
    assert int(after) - int(before) >= 3 * 2**20, r.stdout
    assert int(final) >= int(after)
    assert float(y00) == 1024.0 and shape.strip() == "(2048, 1024)"
