"""The service around the example's packages (run.py serve): a tpdiff-server front and one
tpdiff-worker on loopback, jobs submitted with the tpdiff client over gRPC, and the PNG frames
the service returns read back as videos.

The processes are the real binaries of the build, started the way docs/models.md serves a
latent package; nothing here samples.
"""

import os
import re
import signal
import struct
import subprocess
import time
import zipfile
import zlib

import torch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png_rgb(data):
    """An 8-bit RGB, non-interlaced PNG with unfiltered rows (what the service's PNG frames
    are: FFmpeg's encoder without prediction) -> uint8 [H, W, 3]. The standard library has no
    PNG reader and the example adds no dependency."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos, idat, size = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if (depth, colour, interlace) != (8, 2, 0):
                raise ValueError(f"PNG: bit depth {depth}, colour type {colour}, interlace "
                                 f"{interlace}; expected 8-bit RGB, not interlaced")
            size = (height, width)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if size is None:
        raise ValueError("PNG: no IHDR chunk")
    height, width = size
    raw = zlib.decompress(b"".join(idat))
    stride = width * 3
    if len(raw) != height * (stride + 1):
        raise ValueError(f"PNG: {len(raw)} bytes of image data for {width}x{height} RGB")
    out = bytearray()
    for y in range(height):
        row = y * (stride + 1)
        if raw[row] != 0:
            raise ValueError(f"PNG: row {y} has filter type {raw[row]}; this reader takes "
                             "unfiltered rows only")
        out += raw[row + 1:row + 1 + stride]
    return torch.frombuffer(out, dtype=torch.uint8).view(height, width, 3).clone()


def read_png_frames(path):
    """The service's PNG-frames archive (a ZIP of frame_000.png, ...) -> uint8 [T, H, W, 3]."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        if not names:
            raise ValueError(f"{path}: no PNG frames")
        return torch.stack([read_png_rgb(archive.read(n)) for n in names])


class Service:
    """A tpdiff-server front (plaintext, no auth, loopback, a free port) and one tpdiff-worker
    (CPU, `threads` intra-op threads) serving `models` from `models_dir`; their logs go to
    `log_dir`. A context manager: the processes stop on exit."""

    def __init__(self, server_bin, worker_bin, client_bin, models_dir, models, log_dir,
                 threads=1, timeout=120.0):
        for path in (server_bin, worker_bin, client_bin):
            if not os.access(path, os.X_OK):
                raise FileNotFoundError(f"{path}: not built (docs/finetune.md lists the "
                                        "targets)")
        self.server_bin, self.worker_bin, self.client_bin = server_bin, worker_bin, client_bin
        self.models_dir, self.models, self.log_dir = models_dir, list(models), log_dir
        self.threads, self.timeout = threads, timeout
        self.target = None
        self._procs = []

    def _start(self, name, args):
        log = open(os.path.join(self.log_dir, f"{name}.log"), "w")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._procs.append((name, proc))
        return proc

    def _log_tail(self, name):
        with open(os.path.join(self.log_dir, f"{name}.log")) as f:
            return "".join(f.readlines()[-20:])

    def _wait(self, what, ready, proc, name):
        until = time.time() + self.timeout
        while time.time() < until:
            value = ready()
            if value:
                return value
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before {what}:\n"
                                   + self._log_tail(name))
            time.sleep(0.2)  # polls real processes starting up
        raise TimeoutError(f"{name}: no {what} after {self.timeout:.0f} s:\n"
                           + self._log_tail(name))

    def __enter__(self):
        os.makedirs(self.log_dir, exist_ok=True)
        try:
            server = self._start("tpdiff-server", [
                self.server_bin, "--listen=127.0.0.1:0", f"--models-dir={self.models_dir}",
                "--insecure", "--auth=none", "--metrics_listen=", "--grace_period=2s"])

            def port():
                m = re.search(r"serving on port (\d+)", self._log_tail("tpdiff-server"))
                return m and int(m.group(1))

            self.target = f"127.0.0.1:{self._wait('its port', port, server, 'tpdiff-server')}"
            worker = self._start("tpdiff-worker", [
                self.worker_bin, f"--server={self.target}", "--insecure",
                f"--models-dir={self.models_dir}", f"--models={','.join(self.models)}",
                f"--threads={self.threads}", "--device=cpu", "--worker-id=finetune-example"])
            self._wait("serving the models", self._all_served, worker, "tpdiff-worker")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _all_served(self):
        """True once `tpdiff models` lists every model with a worker (the WORKERS column)."""
        out = subprocess.run([self.client_bin, "models", f"--server={self.target}",
                              "--insecure", "--deadline=5s"], capture_output=True, text=True)
        workers = {}
        for line in out.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 11 and fields[10].isdigit():
                workers[fields[0]] = int(fields[10])
        return out.returncode == 0 and all(workers.get(m, 0) > 0 for m in self.models)

    def __exit__(self, *exc):
        for name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs = []

    def generate(self, out, model, prompt, seed, frames, height, width, steps, guidance,
                 sampler):
        """One job through the front, its video written to `out` as PNG frames at the
        model's resolution (--scale=1); returns the client's wall seconds."""
        args = [self.client_bin, "generate", f"--server={self.target}", "--insecure",
                f"--model={model}", f"--prompt={prompt}", f"--seed={seed}",
                f"--frames={frames}", f"--height={height}", f"--width={width}",
                f"--steps={','.join(map(str, steps))}", f"--guidance={guidance}",
                f"--sampler={sampler}", "--format=png", "--scale=1", f"--out={out}",
                "--deadline=300s"]
        begin = time.time()
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"tpdiff generate failed ({result.returncode}) for {prompt!r} "
                               f"seed {seed} on {model}:\n{result.stdout}{result.stderr}")
        return time.time() - begin
