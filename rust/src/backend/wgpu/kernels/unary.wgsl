// y = f(x) elementwise over a strided x into a contiguous y, and the backward
