# Makes test/parity-train-step.json: run with the Debian python that has torch,
#   cd casl && /usr/bin/python3 test/parity-train-step.py > test/parity-train-step.json
# Provenance only: no test runs Python.
import json, sys, numpy as np, torch
sys.path.insert(0, '../shared/reference')
import tiny_fcos_torch as R
torch.set_num_threads(2)
D='../shared/parity/tiny-fcos-k1/'
man=json.load(open(D+'manifest.json'))
w=np.fromfile(D+'weights.f32',dtype=np.float32)
m=R.TinyFCOS(1)
sd={}
for e in man['weights']:
    n=int(np.prod(e['shape'])); sd[e['name']]=torch.from_numpy(w[e['offset_floats']:e['offset_floats']+n].reshape(e['shape']).copy())
m.load_state_dict(sd)
def T(n,shape): return torch.from_numpy(np.fromfile(D+n+'.f32',dtype=np.float32).reshape(shape))
img=T('input',(2,128,128,3)); boxes=T('gt_boxes',(2,6,4)); labels=T('gt_labels',(2,6)).long(); valid=T('gt_valid',(2,6))>0
pts=R.make_points(128)
opt=R.make_opt(m)
out=m(img); loss,parts=R.fcos_loss(out,pts,boxes,labels,valid)
opt.zero_grad(); loss.backward()
norms={n:float(p.grad.norm()) for n,p in m.named_parameters()}
opt.step()
out=m(img); loss2,parts2=R.fcos_loss(out,pts,boxes,labels,valid)
opt.zero_grad(); loss2.backward(); opt.step()
out=m(img); loss3,parts3=R.fcos_loss(out,pts,boxes,labels,valid)
about = ('PyTorch reference (../shared/reference/tiny_fcos_torch.py, torch %s, 2 threads) on the tiny-fcos-k1 parity bundle: '
         'loss before and after 1 and 2 SGD steps (lr 0.01, momentum 0.9, wd 1e-4) on its fixed batch, and the L2 norm of '
         "every parameter's first gradient. Made by test/parity-train-step.py." % torch.__version__)
print(json.dumps({'_about': about, 'loss': [float(loss), float(loss2), float(loss3)], 'grad_norms': norms}, indent=1))
