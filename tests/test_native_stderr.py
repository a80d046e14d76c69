import subprocess
import sys

from edgeprune._native_stderr import _FILTER

# Lines as TensorFlow 2.21 and the converter print them on this machine.
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795292630.202176   18804 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1795291477.085521    3587 cudart_stub.cc:31] Could not find cuda drivers",
    "E0000 00:00:1795291480.790552    3587 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "W0000 00:00:1795291480.790552    3587 util.cc:131] oneDNN supports DT_BOOL only",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8",
]
KEEP = [
    "edgeprune: baseline: training digits_cnn for 20 epochs",
    "F0000 00:00:1795291480.790552    3587 tensor.cc:99] Check failed: dims() == 2",
    "Traceback (most recent call last):",
    "Segmentation fault (core dumped)",
]


def test_filter_drops_tensorflow_chatter_and_keeps_the_rest():
    text = "\n".join(NOISE[:3] + KEEP[:2] + NOISE[3:] + KEEP[2:]) + "\n"
    proc = subprocess.run(
        [sys.executable, "-c", _FILTER], input=text.encode(), capture_output=True, timeout=30
    )
    assert proc.stdout.decode().splitlines() == KEEP
