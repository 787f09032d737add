"""How the local backend starts a replica program: forked by the run's spawner
(`harness.replica.spawner`, one pre-imported parent per cluster, so replicas share the
interpreter's and PyKMIP's pages and start without importing anything), or as a
program of its own when its clock is moved (a forked child would keep the spawner's
clock for up to a second).

Both run the same `harness.replica` main with the same arguments, in their own session,
working in the replica's control folder, labelled with the run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import registry
from harness.cluster.controls import ReplicaControls, faketime_env, faketime_library
from harness.cluster.state import ClusterError, ClusterState, ReplicaState
from harness.replica import spawner
from harness.replica.control import NO_OFFSET, seed_control_dir
from harness.store import ReplicaFolder, StateFolder
from harness.wait import WaitTimeout, tail, wait_until

SPAWNER_READY_S = 30.0  # the imports take about 0.7 s on an idle machine
REAP_WITHIN_S = 5.0  # a SIGKILLed replica is gone in milliseconds


def _python_env(run_id: str) -> dict[str, str]:
    env = registry.labelled_python_env(run_id)
    env["PYTHONWARNINGS"] = "ignore"
    return env


class ReplicaLauncher:
    """Starts the replicas of one local cluster (its state) and owns its spawner."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.folder = StateFolder(Path(state.state_dir)).spawner
        self.address = spawner.address(registry.registry_tag(), state.run_id)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / "spawner.log"

    # ---- the spawner ----------------------------------------------------------------

    def running(self) -> bool:
        st = self.state
        return bool(st.spawner_pid) and registry.process_alive(
            st.spawner_pid or 0, st.spawner_pid_start
        )

    def start_spawner(self) -> None:
        """Start the spawner (it imports for a while: `await_spawner` waits)."""
        seed_control_dir(self.folder)  # its working folder: a clock without offset
        env = _python_env(self.state.run_id)
        library = faketime_library()
        if library:
            # relative: each child reads the clock of the folder it works in
            env.update(faketime_env(library, "."))
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", spawner.SPAWNER_MODULE, "--address", self.address[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
                env=env,
                start_new_session=True,
            )
        self.state.spawner_pid = self._proc.pid
        self.state.spawner_pid_start = registry.process_start_time(self._proc.pid)

    def await_spawner(self) -> None:
        def up() -> bool:
            if not self.running():
                raise ClusterError(
                    f"the replica spawner (pid {self.state.spawner_pid}) {self._exit_status()} "
                    f"while importing; last log lines of {self.log}:\n" + tail(self.log)
                )
            return spawner.answers(self.address)

        wait_until(up, SPAWNER_READY_S, "the replica spawner to listen", logs=[self.log])

    def _exit_status(self) -> str:
        """How the spawner ended, when this process started it."""
        code = self._proc.poll() if self._proc is not None else None
        if code is None:
            return "is gone"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def ensure_spawner(self) -> None:
        """A spawner that answers: the recorded one, or a new one if it is gone (another
        process may act on a cluster started earlier)."""
        if self.running() and spawner.answers(self.address):
            return
        self.stop_spawner()
        self.start_spawner()
        self.await_spawner()

    def stop_spawner(self, children: Sequence[int] = ()) -> None:
        """Kill the spawner; first let it reap `children` (killed already): a child
        that outlives it is reparented to PID 1, which in some containers never reaps."""
        st = self.state
        if st.spawner_pid and children and self.running():
            with contextlib.suppress(WaitTimeout):
                wait_until(
                    lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
                    REAP_WITHIN_S,
                    "the spawner to reap the killed replicas",
                    poll_s=0.01,
                )
        if st.spawner_pid:
            registry.kill_pids([st.spawner_pid], grace_s=0)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None
        st.spawner_pid = st.spawner_pid_start = None

    # ---- replicas ---------------------------------------------------------------------

    def launch(
        self, rs: ReplicaState, argv: list[str]
    ) -> tuple[int, subprocess.Popen[bytes] | None]:
        """Start the replica program with `argv`; its pid (and its Popen when it runs as
        a program of its own)."""
        data = ReplicaFolder(Path(rs.data_dir))
        controls = ReplicaControls(rs)
        controls.seed()
        clock_moved = faketime_library() is not None and controls.clock() != NO_OFFSET.strip()
        if not clock_moved:
            try:
                self.ensure_spawner()
                pid = spawner.spawn(self.address, argv, data.stdout_log, controls.dir, comm=rs.name)
                return pid, None
            except (spawner.SpawnError, WaitTimeout) as e:
                raise ClusterError(
                    f"replica {rs.name}: {e}; the spawner's last log lines:\n{tail(self.log)}"
                ) from None
        env = _python_env(self.state.run_id)
        library = faketime_library()
        if library:
            env.update(faketime_env(library, str(controls.dir)))
        with data.stdout_log.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", spawner.REPLICA_MODULE, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=controls.dir,
                env=env,
                start_new_session=True,
            )
        return proc.pid, proc
