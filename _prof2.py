import time, torch, cProfile, pstats, io
torch.set_num_threads(1)
import nnsight, vrp
from PIL import Image
from vrp.serve import ServeConfig, Server
from vrp.serve import _worker
nnsight.CONFIG.APP.REMOTE_LOGGING = False
server = Server(ServeConfig(models=("organism/llava",), port=0)).start()
vlm = vrp.load("organism/llava"); model = vlm.nnsight
from tests.conftest import QUESTIONS, random_images
data = vlm.encode(random_images(2), QUESTIONS[:2]).data
prof = cProfile.Profile()
orig = _worker.ModelWorker._execute
times=[]
def wrapped(self, job):
    a=time.perf_counter()
    prof.enable()
    try: return orig(self, job)
    finally:
        prof.disable(); times.append(time.perf_counter()-a)
_worker.ModelWorker._execute = wrapped
for i in range(40):
    with model.trace(data, remote=server.url):
        outs = nnsight.save([model.model.language_model.layers[i].output for i in range(4)])
import statistics
print("execute median ms", statistics.median(times)*1e3)
s=io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(45); print(s.getvalue()[:9000])
server.stop()
