"""Start and stop JupyterLab and Voila on 127.0.0.1 for browser tests.

Each server runs in its own process group with isolated Jupyter directories,
logs to a file, and is stopped by its process group (SIGTERM, then SIGKILL).
Kernels start in sessions of their own, so they are found (psutil) before the
server is stopped and killed by pid if they outlive it. A server that does not
come up raises `ServerStartError` with the tail of its log; nothing waits
without a timeout.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

__all__ = [
    "JupyterLabServer",
    "ServerProcess",
    "ServerStartError",
    "free_port",
    "jupyter_env",
    "start_jupyterlab",
    "start_voila",
]


class ServerStartError(RuntimeError):
    """A test server exited or did not answer in time; the message has its log tail."""


def free_port():
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyter_env(home):
    """Environment for a Jupyter server whose user-level directories live in ``home``.

    System and ``sys.prefix`` directories stay visible (server extensions,
    lab extensions and the ``python3`` kernel are installed there); the
    user's config, data, runtime, settings, workspaces, IPython and
    matplotlib directories are replaced by fresh ones.
    """
    home = Path(home)
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({key: str(path) for key, path in dirs.items()})
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # The kernel must be the Python running the tests, with its scripts first.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for key in ("JUPYTER_PATH", "JUPYTER_NO_CONFIG", "PYTHONWARNINGS", "JPY_PARENT_PID"):
        env.pop(key, None)
    return env


def _http_ok(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _listens(pid, port):
    """True if process ``pid`` has a listening TCP socket on ``port``."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
               for c in conns)


def _tcp_open(port, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process, its process group, its log and its address.

    Parameters
    ----------
    name : str
        Short name used in messages ("jupyterlab", "voila smoke.ipynb").
    argv : list of str
        Command line.
    env : dict
        Environment.
    cwd : path-like
        Working directory.
    log_path : path-like
        File that receives stdout and stderr.
    port : int
        Port the server listens on (127.0.0.1).
    token : str
        Authentication token.
    ready_path : str or None
        HTTP path (with ``{token}``) that answers 200 once the server is
        ready; None means "ready when this process listens on the port and
        the port accepts a connection" (so another program that holds the
        port is not taken for the server).
    """

    def __init__(self, name, argv, *, env, cwd, log_path, port, token, ready_path=None):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.port = port
        self.token = token
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None
        self.startup_seconds = None
        self._log = None
        self._leftovers = None

    def __repr__(self):
        state = "running" if self.running else "stopped"
        return f"<ServerProcess {self.name} {self.url} {state}>"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout=60.0):
        """Start the process and wait until it answers; raise `ServerStartError` if not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group: pgid == pid
        )
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with code {code} before it was ready.\n"
                    f"command: {' '.join(self.argv)}\n{self.log_tail()}"
                )
            if self._is_ready():
                self.startup_seconds = time.monotonic() - t0
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} did not answer on {self.url} within {timeout:.0f} s.\n"
                    f"command: {' '.join(self.argv)}\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _is_ready(self):
        if self.ready_path is None:
            return _listens(self.proc.pid, self.port) and _tcp_open(self.port, timeout=0.5)
        return _http_ok(self.url + self.ready_path.format(token=self.token), timeout=2.0)

    def log_text(self):
        """The whole log so far, decoded."""
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        """The last ``lines`` lines of the log, framed for a failure message."""
        tail = self.log_text().splitlines()[-lines:]
        body = "\n".join(tail) if tail else "(empty)"
        return f"--- last {len(tail)} lines of {self.log_path} ---\n{body}\n--- end of log ---"

    def terminate(self):
        """Send SIGTERM to the process group without waiting (then call `stop`).

        Stopping several servers is faster when all are told first.
        """
        proc = self.proc
        if proc is None or self._leftovers is not None:
            return
        try:
            # Kernels start sessions of their own: remember them to end them by pid.
            self._leftovers = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            self._leftovers = []
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
        # Kernels need no goodbye from a test server: ending them now saves the
        # server's shutdown handshake with each (seconds per kernel on a busy machine).
        for child in self._leftovers:
            try:
                child.terminate()
            except psutil.Error:
                pass

    def stop(self, *, timeout=10.0):
        """Stop the process group (SIGTERM, then SIGKILL) and any kernel left behind."""
        proc = self.proc
        if proc is not None:
            self.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            # psutil checks each process's identity (pid and start time) before killing.
            _gone, alive = psutil.wait_procs(self._leftovers, timeout=min(timeout, 5.0))
            for child in alive:
                try:
                    child.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=5.0)
        if self._log is not None:
            self._log.close()
            self._log = None


class JupyterLabServer(ServerProcess):
    """A JupyterLab server with a root directory that tests copy notebooks into."""

    def __init__(self, *args, root_dir, **kwargs):
        super().__init__(*args, **kwargs)
        self.root_dir = Path(root_dir)

    def add(self, src, dest=None):
        """Copy a file or directory into the Lab's root; return its path relative to the root.

        ``dest`` (relative) defaults to the source's name. Copying again
        replaces the earlier copy, so each test starts from the repository's
        version; the repository itself is never touched.
        """
        src = Path(src)
        rel = Path(dest) if dest is not None else Path(src.name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"dest must be a relative path inside the root; got {dest!r}")
        target = self.root_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(src, target)
        else:
            shutil.copy2(src, target)
        return rel.as_posix()

    def api(self, method, path, *, timeout=10.0):
        """Call the server's REST API; return the decoded JSON (or None)."""
        request = urllib.request.Request(
            self.url + path, method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, *, timeout=10.0):
        """End every session and kernel of the server (tests open one per notebook)."""
        if not self.running:
            return
        for kind in ("sessions", "kernels"):
            for item in self.api("GET", f"/api/{kind}", timeout=timeout):
                try:
                    self.api("DELETE", f"/api/{kind}/{item['id']}", timeout=timeout)
                except urllib.error.HTTPError as err:
                    if err.code != 404:  # 404: already gone
                        raise


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_jupyterlab(root_dir, home, *, log_path, timeout=60.0, extra_args=()):
    """Start JupyterLab 4 on a free 127.0.0.1 port, serving ``root_dir``.

    Parameters
    ----------
    root_dir : path-like
        Directory served as the Lab's root (a temporary copy of the notebooks).
    home : path-like
        Directory for the isolated Jupyter config, runtime, settings and workspaces.
    log_path : path-like
        Server log file.
    timeout : float
        Seconds to wait for ``/api/status`` to answer.
    extra_args : sequence of str
        More command-line options.

    Returns
    -------
    JupyterLabServer
        Started; ``.url``, ``.token``, ``.startup_seconds``, ``.add(path)``.
    """
    env = jupyter_env(home)
    # No "get Jupyter news?" toast, no update check (both would ask the internet).
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(16)

    def make(port):
        argv = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            f"--ServerApp.root_dir={root_dir}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={env['JUPYTERLAB_SETTINGS_DIR']}",
            f"--LabApp.workspaces_dir={env['JUPYTERLAB_WORKSPACES_DIR']}",
        ]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        argv.extend(extra_args)
        return JupyterLabServer(
            "jupyterlab", argv, env=env, cwd=root_dir, log_path=log_path, port=port,
            token=token, ready_path="/api/status?token={token}", root_dir=root_dir,
        )

    return _start_on_free_port(make, timeout)


def start_voila(notebook, home, *, log_path, timeout=60.0, extra_args=()):
    """Start Voila on a free 127.0.0.1 port, serving one notebook.

    Ready means the port accepts a connection: a ``GET /`` would start a
    kernel and run the notebook, which is the test's job.

    Parameters
    ----------
    notebook : path-like
        The notebook (already in its temporary directory); Voila runs in that directory.
    home : path-like
        Directory for the isolated Jupyter config and runtime.
    log_path : path-like
        Server log file.
    timeout : float
        Seconds to wait for the port.
    extra_args : sequence of str
        More command-line options.

    Returns
    -------
    ServerProcess
        Started; open ``.url + "/?token=" + .token``.
    """
    notebook = Path(notebook)
    env = jupyter_env(home)
    token = secrets.token_hex(16)

    def make(port):
        argv = [
            sys.executable, "-m", "voila", notebook.name,
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--Voila.port={port}",
            "--Voila.port_retries=0",
            f"--Voila.token={token}",
            f"--Voila.connection_dir_root={env['JUPYTER_RUNTIME_DIR']}",
            "--VoilaConfiguration.show_tracebacks=True",
            *extra_args,
        ]
        return ServerProcess(
            f"voila {notebook.name}", argv, env=env, cwd=notebook.parent,
            log_path=log_path, port=port, token=token, ready_path=None,
        )

    return _start_on_free_port(make, timeout)


def _start_on_free_port(make, timeout, attempts=3):
    """Start ``make(port)`` on a free port; try another port if this one was taken meanwhile."""
    for attempt in range(attempts):
        server = make(free_port())
        try:
            return server.start(timeout=timeout)
        except ServerStartError as err:
            if "already in use" not in str(err) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
