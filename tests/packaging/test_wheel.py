"""The repaired wheel (scripts/build-wheel.sh, what cibuildwheel makes with pyproject's
settings) where no compiler is: its tag and contents; its extensions' needs (glibc <= 2.34,
OpenSSL's libcrypto.so.3 at symbol version OPENSSL_3.0.0 only, no bundled copy); then, in a
fresh venv whose pip runs with ``CC=false``, only the venv on PATH and, where a private mount
namespace is allowed (``unshare``), gcc and the Python and OpenSSL headers hidden:
``pip install --no-index`` of the wheel and its dependencies' wheels (no compile step in the
log), the extensions loaded after ``import ssl`` (one libcrypto in the process, the host's),
``gwcore check`` of a config and one request proxied by ``gwcore serve`` to a real origin. Last,
pyproject's cibuildwheel ``test-command`` (the unit and conformance tests) against the installed
wheel, after installing its [test] extra from wheels only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import yaml
from conftest import REPO, Artefacts
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

_spec = importlib.util.spec_from_file_location(
    "gw_packaging_integration_helpers", REPO / "tests" / "integration" / "conftest.py")
helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = helpers          # its dataclasses look their module up there
_spec.loader.exec_module(helpers)

pytestmark = pytest.mark.timeout(1800)

PY = f"cp{sys.version_info.major}{sys.version_info.minor}"
ARCH = platform.machine()
TAG = f"{PY}-{PY}-manylinux_2_34_{ARCH}"
MODULES = sorted([".".join(p.relative_to(REPO).with_suffix("").parts)
                  for p in (REPO / "gwcore").rglob("_*.pyx")] + ["gwcore.http._cffi_http1"])
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libcrypto.so.3", "libssl.so.3"}


# --------------------------------------------------------------------------- the wheel itself


def _extensions(wheel: Path, dest: Path) -> dict[str, Path]:
    """module name -> extracted .so"""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".so"):
                z.extract(name, dest)
                out[name.split(".", 1)[0].replace("/", ".")] = dest / name
    return out


def _elf(path: Path) -> tuple[set[str], dict[str, set[str]], bool]:
    """(DT_NEEDED, {library: symbol versions needed}, has debug info)"""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        needed: set[str] = set()
        versions: dict[str, set[str]] = {}
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                needed |= {t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"}
            elif isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    versions.setdefault(verneed.name, set()).update(a.name for a in auxes)
        return needed, versions, elf.get_section_by_name(".debug_info") is not None


def test_wheel_name_tag_and_size(artefacts: Artefacts) -> None:
    wheel = artefacts.wheel
    assert wheel.name == f"gwcore-0.1.0-{TAG}.whl"
    with zipfile.ZipFile(wheel) as z:
        meta = z.read("gwcore-0.1.0.dist-info/WHEEL").decode()
    assert re.findall(r"^Tag: (.+)$", meta, re.MULTILINE) == [TAG]
    assert "Root-Is-Purelib: false" in meta
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size:,} bytes (as built, unstripped: "
          f"{artefacts.built.stat().st_size:,}); sdist + wheel + repair: "
          f"{artefacts.seconds:.0f} s")


def test_wheel_contents(artefacts: Artefacts, tmp_path: Path) -> None:
    with zipfile.ZipFile(artefacts.wheel) as z:
        names = set(z.namelist())
    assert sorted(_extensions(artefacts.wheel, tmp_path)) == MODULES
    assert not [n for n in names if ".libs/" in n]            # nothing grafted by auditwheel
    assert not [n for n in names if n.endswith((".pyx", ".c", ".h"))]
    assert {"gwcore/http/_parser.pxd", "gwcore/http/_parser.pyi", "gwcore/http/cffi.py",
            "gwcore/http/_errors.py"} <= names


def test_extensions_need_glibc_2_34_and_openssl_3_0_only(artefacts: Artefacts,
                                                         tmp_path: Path) -> None:
    crypto_users = []
    for module, so in _extensions(artefacts.wheel, tmp_path).items():
        needed, versions, debug = _elf(so)
        assert needed <= ALLOWED_NEEDED, (module, needed)
        assert not debug, f"{module}: debug information left (auditwheel repair --strip)"
        glibc = {v for v in versions.get("libc.so.6", ()) if v.startswith("GLIBC_2.")}
        assert max(int(v.split(".")[1]) for v in glibc) <= 34, (module, glibc)
        if "libcrypto.so.3" in needed:
            crypto_users.append(module)
            # Amazon Linux 2023 and Debian 12 ship OpenSSL 3.0: nothing from 3.1+
            assert versions["libcrypto.so.3"] == {"OPENSSL_3.0.0"}, (module, versions)
        if "libssl.so.3" in needed:         # gwcore._ocsp: the SSL_CTX of Python's ssl
            assert module == "gwcore._ocsp", module
            assert versions["libssl.so.3"] == {"OPENSSL_3.0.0"}, (module, versions)
    assert sorted(crypto_users) == ["gwcore._ocsp", "gwcore.jwt._jws", "gwcore.proxy._ring"]


def test_the_build_left_the_checkout_alone(artefacts: Artefacts) -> None:
    assert artefacts.checkout_after == artefacts.checkout_before


# --------------------------------------------------------------------------- where no compiler is


@dataclass
class Venv:
    path: Path
    env: dict[str, str]        # no compiler: CC=false, PATH = the venv only
    install_log: str
    hidden: list[str]          # what the install ran without (mounted over), or []

    @property
    def bin(self) -> Path:
        return self.path / "bin"


def _hiding_prefix(tmp: Path) -> tuple[list[str], list[str]]:
    """(argv prefix that runs a command in a private mount namespace where gcc and the Python
    and OpenSSL headers are gone, what it hides); ([], []) where unshare is not allowed."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        return [], []
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    dirs = [Path(sysconfig.get_paths()["include"]), Path("/usr/include/openssl")]
    compilers = {os.path.realpath(p) for name in ("gcc", "cc", "c++", "g++", "clang")
                 if (p := shutil.which(name))}
    steps = [f"{mount} --bind {shlex.quote(str(empty))} {shlex.quote(str(d))}"
             for d in dirs if d.is_dir()]
    steps += [f"{mount} --bind /bin/false {shlex.quote(c)}" for c in sorted(compilers)]
    script = " && ".join(steps + ['exec "$@"'])
    for flags in (["-m"], ["-r", "-m"]):
        prefix = [unshare, *flags, "--", "/bin/sh", "-c", script, "sh"]
        if subprocess.run([*prefix, "/bin/true"], capture_output=True, timeout=30,
                          check=False).returncode == 0:
            return prefix, [str(d) for d in dirs if d.is_dir()] + sorted(compilers)
    return [], []


def _no_compiler_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA"))}
    env.update(PATH=str(venv / "bin"), CC="false", CXX="false", VIRTUAL_ENV=str(venv),
               PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.fixture(scope="module")
def venv(artefacts: Artefacts, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("no-compiler")
    path, deps = base / "venv", base / "wheels"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    # the dependencies' wheels, fetched beforehand (binary only): the install itself is offline
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary",
                         ":all:", "--dest", str(deps), f"{artefacts.wheel}[cffi]"],
                        capture_output=True, text=True, timeout=600, check=False)
    assert dl.returncode == 0, dl.stdout[-2000:] + dl.stderr[-4000:]
    (deps / artefacts.wheel.name).unlink()               # the one under test comes from its path
    env = _no_compiler_env(path)
    prefix, hidden = _hiding_prefix(base)
    install = subprocess.run(
        [*prefix, str(path / "bin" / "python"), "-m", "pip", "install", "-v", "--no-index",
         "--find-links", str(deps), "--only-binary", ":all:", f"{artefacts.wheel}[cffi]"],
        env=dict(env, PIP_CONFIG_FILE=os.devnull), capture_output=True, text=True, timeout=600,
        check=False, cwd=base)
    log = install.stdout + install.stderr
    assert install.returncode == 0, log[-6000:]
    return Venv(path, env, log, hidden)


def test_install_ran_no_compiler(venv: Venv, artefacts: Artefacts) -> None:
    log = venv.install_log
    assert f"Processing {artefacts.wheel}" in log
    assert re.search(r"Successfully installed .*\bgwcore-0\.1\.0\b", log)
    for never in ("Building wheel", "running build", "build_ext", "setup.py", "gcc",
                  "Preparing metadata", "Getting requirements to build"):
        assert never not in log, never
    processed = re.findall(r"^Processing (\S+\.whl)", log, re.MULTILINE)
    assert {Path(p).name.split("-")[0] for p in processed} >= {
        "gwcore", "uvloop", "msgspec", "pyyaml", "setproctitle", "prometheus_client", "cffi"}
    lines = [ln for ln in log.splitlines()
             if ln.startswith(("Processing", "Successfully installed"))]
    print("\n" + "\n".join(lines))
    print("hidden during the install: " + (", ".join(venv.hidden) or
                                          "nothing (no private mount namespace here)"))


def _tokens() -> list[list[str]]:
    """[algorithm, token, public PEM] signed by PyJWT (cryptography), for gwcore to verify."""
    out = []
    for alg, key in (("RS256", rsa.generate_private_key(65537, 2048)),
                     ("ES256", ec.generate_private_key(ec.SECP256R1())),
                     ("EdDSA", ed25519.Ed25519PrivateKey.generate())):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append([alg, pyjwt.encode({"sub": alg}, key, algorithm=alg), pem.decode()])
    return out


SSL_FIRST = """
import json, ssl, sys
ssl.create_default_context()     # CPython's _ssl has loaded the host's libcrypto
import gwcore.http.cffi, gwcore.jwt, gwcore.proxy._ring, gwcore._ocsp
claims = [gwcore.jwt.decode(t, k, algorithms=[a])["sub"] for a, t, k in json.load(sys.stdin)]
maps = [ln.split()[-1] for ln in open("/proc/self/maps") if ln.rstrip().endswith(".so")
        or ".so." in ln.rsplit("/", 1)[-1]]
print(json.dumps({"claims": claims, "openssl": ssl.OPENSSL_VERSION,
                  "libcrypto": sorted({p for p in maps if "libcrypto" in p}),
                  "libssl": sorted({p for p in maps if "libssl" in p}),
                  "gwcore": sorted({p for p in maps if "/gwcore/" in p}),
                  "parsed": gwcore.http.cffi.Parser().parse_request(
                      b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n").consumed}))
"""


def test_extensions_after_ssl_share_the_hosts_libcrypto(venv: Venv) -> None:
    tokens = _tokens()
    run = subprocess.run([str(venv.bin / "python"), "-c", SSL_FIRST], input=json.dumps(tokens),
                         env=venv.env, capture_output=True, text=True, timeout=60, check=False,
                         cwd=venv.path)
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads(run.stdout)
    assert got["claims"] == ["RS256", "ES256", "EdDSA"] and got["parsed"] == 27
    assert got["openssl"].startswith("OpenSSL 3.")
    assert len(got["libcrypto"]) == 1, got["libcrypto"]         # one copy: the host's
    assert not got["libcrypto"][0].startswith(str(venv.path))
    assert len(got["libssl"]) == 1 and not got["libssl"][0].startswith(str(venv.path))
    site = str(venv.path / "lib")
    assert got["gwcore"] and all(p.startswith(site) for p in got["gwcore"]), got["gwcore"]
    print(f"\n{got['openssl']}, libcrypto {got['libcrypto'][0]}, "
          f"{len(got['gwcore'])} gwcore extensions from the venv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Any]:
    o = helpers.start_origin(tmp_path, "origin-for-wheel")
    yield o
    o.proc.stop()


def test_check_and_serve_a_proxied_request(venv: Venv, origin: Any, tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "workers": 1,
        "listeners": [{"name": "public", "address": f"127.0.0.1:{port}"}],
        "clusters": [{"name": "origin", "endpoints": [f"127.0.0.1:{origin.port}"]}],
        "routes": [{"match": {"path_prefix": "/"}, "cluster": "origin"}],
    }))
    check = subprocess.run([str(venv.bin / "gwcore"), "check", str(config)], env=venv.env,
                           capture_output=True, text=True, timeout=60, check=False,
                           cwd=tmp_path)
    assert (check.returncode, check.stdout.strip()) == (0, f"{config}: ok"), check.stderr

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv.bin / "gwcore"), "serve", "--config", str(config)],
                                env=dict(venv.env, NOTIFY_SOCKET=str(tmp_path / "notify.sock")),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=tmp_path,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        notify.settimeout(0.5)
        ready = False
        while not ready:
            assert proc.poll() is None, f"gwcore serve exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no READY=1 after 30 s:\n{log.read_text()}"
            try:
                ready = notify.recv(100) == b"READY=1"
            except TimeoutError:
                pass
        resp = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=10, trust_env=False)
        assert resp.status_code == 200, resp.text
        assert resp.headers["via"] == "1.1 gwcore"              # through the gateway
        assert origin.stats()["requests"] >= 1
        maps = set()
        for pid in helpers.tree_pids(proc.pid):                 # master and worker
            try:
                with open(f"/proc/{pid}/maps") as f:
                    maps |= {ln.split()[-1] for ln in f if ".so" in ln}
            except OSError:
                pass
        ours = {p for p in maps if "/gwcore/" in p}
        assert ours and all(p.startswith(str(venv.path)) for p in ours), ours
        print(f"\nGET /hello through gwcore serve (installed wheel): {resp.status_code}, "
              f"via {resp.headers['via']}, {len(resp.content)} bytes")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)                 # its workers, if left behind
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)
        notify.close()
    assert proc.returncode == 0, log.read_text()[-4000:]


def test_cibuildwheel_test_command_passes_on_the_installed_wheel(venv: Venv,
                                                                 artefacts: Artefacts,
                                                                 tmp_path: Path) -> None:
    """pyproject's test-command, as cibuildwheel runs it: the [test] extra installed (wheels
    only, still no compiler), from a directory outside the checkout, ``{project}`` the checkout."""
    env = dict(venv.env)
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})  # the index
    extra = subprocess.run([str(venv.bin / "python"), "-m", "pip", "install", "--quiet",
                            "--only-binary", ":all:", f"{artefacts.wheel}[test]"],
                           env=env, capture_output=True, text=True, timeout=900, check=False)
    assert extra.returncode == 0, extra.stdout[-2000:] + extra.stderr[-4000:]
    with open(REPO / "pyproject.toml", "rb") as f:
        command = tomllib.load(f)["tool"]["cibuildwheel"]["test-command"]
    commands = command if isinstance(command, list) else [command]
    for cmd in commands:
        run = subprocess.run(["/bin/sh", "-c", cmd.replace("{project}", str(REPO))],
                             env=venv.env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=1200, check=False, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, f"{cmd}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        print(f"\n$ {cmd}\n" + "\n".join(run.stdout.strip().splitlines()[-2:]))
