"""Is a sub-pixel rewrite of ConvTranspose2d (one conv2d over the input with the four output
phases as channels, then pixel_shuffle; same weights, so same parameters and init) faster than
PyTorch's ConvTranspose2d on this CPU? Forward + backward, batch 256, one thread, for each
transposed convolution of the CAE (28x28 and 16x16). Checks the two agree, prints the times.

    python bench/deconv_subpixel.py
"""

import math, time, torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(1)

def phase_index(K, p):
    # for output phase a in {0,1} and tap j: kernel index a+p-2(T0+j), or K (a zero) if outside
    ts = [(math.ceil((a + p - K + 1) / 2), (a + p) // 2) for a in (0, 1)]
    T0, T1 = min(t[0] for t in ts), max(t[1] for t in ts)
    J = T1 - T0 + 1
    idx = torch.full((2, J), K, dtype=torch.long)
    for a in (0, 1):
        for j in range(J):
            k = a + p - 2 * (T0 + j)
            if 0 <= k < K:
                idx[a, j] = k
    return idx, T0, T1

def subpixel_deconv(x, weight, bias, p, out_size):
    cin, cout, K, _ = weight.shape
    idx, T0, T1 = phase_index(K, p)
    J = idx.shape[1]
    w = F.pad(weight, (0, 1, 0, 1))
    w = w[:, :, idx][:, :, :, :, idx]  # cin, cout, 2, J, 2, J
    w = w.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, J, J)
    H = x.shape[-1]
    M = (out_size + 1) // 2
    pr = M - H + T1
    y = F.conv2d(F.pad(x, (-T0, pr, -T0, pr)), w, bias.repeat_interleave(4))
    y = F.pixel_shuffle(y, 2)
    return y[..., :out_size, :out_size]

cases = [ (128,64,3,0,0,3,7), (64,32,5,2,1,7,14), (32,1,5,2,1,14,28), (128,64,3,1,1,2,4), (64,32,5,2,1,4,8),(32,1,5,2,1,8,16)]
for cin,cout,K,p,op,H,out in cases:
    m = nn.ConvTranspose2d(cin,cout,K,stride=2,padding=p,output_padding=op)
    x = torch.randn(256,cin,H,H, requires_grad=True)
    y1 = m(x); y2 = subpixel_deconv(x, m.weight, m.bias, p, out)
    assert y1.shape == y2.shape, (y1.shape, y2.shape)
    err = (y1-y2).abs().max().item()
    g = torch.randn_like(y1)
    ga = torch.autograd.grad((y1*g).sum(), [x, m.weight, m.bias])
    gb = torch.autograd.grad((y2*g).sum(), [x, m.weight, m.bias])
    gerr = max((a-b).abs().max().item() for a,b in zip(ga,gb))
    def t(f):
        best=1e9
        for _ in range(7):
            s=time.perf_counter(); y=f(); y.backward(g); best=min(best,time.perf_counter()-s)
        return best*1e3
    tn=[];ts=[]
    for _ in range(3):
        tn.append(t(lambda: m(x))); ts.append(t(lambda: subpixel_deconv(x,m.weight,m.bias,p,out)))
    print(f"{cin}->{cout} {H}->{out}: err {err:.1e} gerr {gerr:.1e}  native {min(tn):.1f} ms  subpixel {min(ts):.1f} ms  x{min(tn)/min(ts):.2f}")
