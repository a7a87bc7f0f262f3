"""Studies from Python: ask for trials, train them in your own code, tell their values.

    with TaskgrouperClient("http://127.0.0.1:8000") as tg:
        study = tg.create_study(tasks=["a", "b", "c"], strategy="adaptive", value_kind="loss")
        for trial in study.trials():                  # safe in any number of processes and machines
            val, test = train(trial.tasks, trial.size, seed=trial.seed)
            trial.tell(val, test=test)
        grouping = tg.study_grouping(study.id, budget=2)

:meth:`Study.trials` asks until the study is complete, waiting a second while no trial waits (an
adaptive study plans its next round when the running trials end; a lost lease puts one back).
While a trial is out, a thread extends its lease every third of ``lease_seconds``
(``heartbeat=False``: none, e.g. for a trial that trains in another process that heartbeats
itself); a caller that dies loses its lease,
and the trial goes to the next caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from service.study_schemas import StudyOut, TrialOut

if TYPE_CHECKING:
    from service.client import TaskgrouperClient

#: seconds :meth:`Study.trials` waits between asks while no trial waits (the server's Retry-After)
DEFAULT_WAIT = 1.0


class StudyComplete(Exception):
    """The study has ended: every trial is finished and the strategy wants no more."""

    def __init__(self, study_id: str) -> None:
        super().__init__(f"study {study_id} is complete")
        self.study_id = study_id


class Trial:
    """A leased trial: ``tasks``, ``size``, ``seed``, ``epochs`` (esa) and ``id``; :meth:`tell` once."""

    def __init__(self, client: TaskgrouperClient, out: TrialOut) -> None:
        self.client = client
        self.out = out
        self._beat: threading.Event | None = None

    @property
    def id(self) -> str:
        return self.out.id

    @property
    def tasks(self) -> list[str]:
        return self.out.tasks

    @property
    def size(self) -> str:
        return self.out.size

    @property
    def seed(self) -> int:
        return self.out.seed

    @property
    def epochs(self) -> int | None:
        return self.out.epochs

    def heartbeat(self) -> TrialOut:
        """``POST /trials/{id}:heartbeat``: extend the lease (:class:`ApiError` 409 once it is lost)."""
        return self.client._call("POST", f"/trials/{self.id}:heartbeat", TrialOut.model_validate,
                                 json={"lease": self.out.lease})

    def tell(self, val: Mapping[str, float], *, test: Mapping[str, float] | None = None,
             epochs_run: int | None = None, cost: float | None = None, seconds: float | None = None
             ) -> TrialOut:
        """``POST /trials/{id}:tell``: the per-task values (``val`` selects, ``test`` reports)."""
        self.stop_heartbeat()
        body = {"lease": self.out.lease, "val": dict(val), "test": dict(test) if test is not None else None,
                "epochs_run": epochs_run, "cost": cost, "seconds": seconds}
        return self.client._call("POST", f"/trials/{self.id}:tell", TrialOut.model_validate,
                                 json={k: v for k, v in body.items() if v is not None})

    def start_heartbeat(self, every: float) -> None:
        """Heartbeat every ``every`` seconds in a daemon thread until :meth:`stop_heartbeat`."""
        self._beat = stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.heartbeat()
                except Exception:  # the lease is gone or the server unreachable: tell will say which
                    return

        threading.Thread(target=beat, name=f"heartbeat-{self.id}", daemon=True).start()

    def stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.set()


class Study:
    """A study on the server (``out``: its last read state)."""

    def __init__(self, client: TaskgrouperClient, out: StudyOut) -> None:
        self.client = client
        self.out = out

    @property
    def id(self) -> str:
        return self.out.id

    def refresh(self) -> StudyOut:
        """``GET /studies/{id}``: state and progress."""
        self.out = self.client._call("GET", f"/studies/{self.id}", StudyOut.model_validate)
        return self.out

    def ask(self, worker: str | None = None) -> Trial | None:
        """``POST /studies/{id}/trials:ask``: a leased :class:`Trial`; ``None`` when none waits now
        (ask again later). :class:`StudyComplete` once the study is complete."""
        from service.client import ApiError

        def parse(body: Any) -> Trial | None:
            return None if body is None else Trial(self.client, TrialOut.model_validate(body))

        try:
            return self.client._call("POST", f"/studies/{self.id}/trials:ask", parse,
                                     json={"worker": worker} if worker else {})
        except ApiError as exc:
            if exc.status == 410:
                raise StudyComplete(self.id) from None
            raise

    def trials(self, *, worker: str | None = None, heartbeat: bool = True, wait: float = DEFAULT_WAIT
               ) -> Iterator[Trial]:
        """Leased trials until the study is complete, waiting ``wait`` seconds between asks while
        none waits (see the module docstring)."""
        while True:
            try:
                trial = self.ask(worker)
            except StudyComplete:
                return
            if trial is None:
                time.sleep(wait)
                continue
            if heartbeat:
                trial.start_heartbeat(max(0.5, self.out.lease_seconds / 3))
            try:
                yield trial
            finally:
                trial.stop_heartbeat()
    def table(self, split: str = "val") -> dict[str, Any]:
        """``GET /studies/{id}/table``: the explicit problem of what has been measured."""
        return self.client._call("GET", f"/studies/{self.id}/table", dict, params={"split": split})
