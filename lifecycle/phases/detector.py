"""The detector: run ``bin/detect`` of each group in ``order.toml`` until one group passes.

Semantics follow upstream (``phase/detector.go``): system buildpacks (``system.toml``) wrap every
group; composite buildpacks expand their own order in place; a buildpack already tried in an
earlier group is not run again; a group passes when every non-optional buildpack passes and a
build plan resolves (every ``requires`` met by an earlier or same ``provides``, every ``provides``
required; ``[[or]]`` alternatives tried in order; optional buildpacks dropped when they break it).
The first group that passes wins.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lifecycle.api import ApiVersion
from lifecycle.buildpack.api import verify_buildpack_api
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.files import _toml
from lifecycle.files import analyzed as analyzed_file
from lifecycle.files import buildpack as buildpack_file
from lifecycle.files import order as order_file
from lifecycle.files import system as system_file
from lifecycle.files.buildpack import BuildpackToml
from lifecycle.files.group import Group, GroupEntry
from lifecycle.files.order import OrderGroup
from lifecycle.files.plan import DetectPlan, Plan, PlanEntry, PlanSections, Provider, Require
from lifecycle.phases._buildenv import BuildEnv
from lifecycle.phases._targets import RunTarget, run_target

CODE_PASS = 0
CODE_FAIL = 100


@dataclass(frozen=True)
class DetectInputs:
    """Resolved inputs of the detector."""

    app_dir: Path
    buildpacks_dir: Path
    order_path: Path
    system_path: Path
    platform_dir: Path
    analyzed_path: Path
    platform_api: ApiVersion
    build_config_dir: Path | None = None
    exec_env: str = "production"
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Element:
    """A buildpack reference during detection (``order.toml`` element plus what detection learns)."""

    id: str
    version: str
    optional: bool = False
    api: str = ""
    homepage: str = ""

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def key(self) -> str:
        return f"Buildpack {self}"


@dataclass
class DetectRun:
    """One ``bin/detect`` run: exit code (-1 for a lifecycle-side error), output, parsed plan."""

    code: int
    output: str = ""
    err: str = ""
    plan: DetectPlan = field(default_factory=DetectPlan)


class _NoGroup(Exception):
    """No group passed; ``buildpack_error`` when some buildpack errored."""

    def __init__(self, buildpack_error: bool = False) -> None:
        super().__init__("no group")
        self.buildpack_error = buildpack_error


Option = tuple[Element, PlanSections]


@dataclass
class _Dep:
    providers: list[Element] = field(default_factory=list)
    requires: list[Require] = field(default_factory=list)
    early_requires: list[Element] = field(default_factory=list)
    extra_provides: list[Element] = field(default_factory=list)


def _dep_map(trial: list[Option]) -> dict[str, _Dep]:
    deps: dict[str, _Dep] = {}
    for el, sections in trial:
        for provide in sections.provides:
            deps.setdefault(provide.name, _Dep()).extra_provides.append(el)
        for require in sections.requires:
            entry = deps.setdefault(require.name, _Dep())
            entry.providers.extend(entry.extra_provides)
            entry.extra_provides = []
            if entry.providers:
                entry.requires.append(require)
            else:
                entry.early_requires.append(el)
    return deps


def _order_elements(groups: list[OrderGroup]) -> list[list[Element]]:
    return [[Element(e.id, e.version, e.optional) for e in g.group] for g in groups]


def _with_system(order: list[list[Element]], inputs: DetectInputs, logger: Any) -> list[list[Element]]:
    if inputs.platform_api < ApiVersion(0, 15):
        return order
    try:
        system = system_file.read(inputs.system_path)
    except LifecycleError as exc:
        raise LifecycleError(f"failed to initialize detector: reading system: {exc.message}",
                             ExitCode.DETECT_OTHER) from None
    if system is None:
        logger.debug(f'No system buildpacks found at path "{inputs.system_path}"')
        return order
    pre = [Element(e.id, e.version, e.optional) for e in system.pre.buildpacks]
    post = [Element(e.id, e.version, e.optional) for e in system.post.buildpacks]
    merged = []
    for group in order:
        ids = {e.id for e in group}
        before = [e for e in pre if e.id not in ids]
        after = [e for e in post if e.id not in ids]
        if before:
            logger.debug(f"Prepending {len(before)} system buildpack(s) to group")
        if after:
            logger.debug(f"Appending {len(after)} system buildpack(s) to group")
        merged.append([*before, *group, *after])
    return merged


class _HeldLog:
    """The resolver's log lines, held back until detection ends (upstream's memory handler): then
    all of them at info level when no group passed, else the info ones at info, the rest at debug."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.entries: list[tuple[str, str]] = []

    def debug(self, msg: str) -> None:
        self.entries.append(("debug", msg))

    def info(self, msg: str) -> None:
        self.entries.append(("info", msg))

    def flush(self, failed: bool) -> None:
        for level, msg in self.entries:
            if failed or level == "info":
                self.logger.info(msg)
            else:
                self.logger.debug(msg)


class _DetectExec:
    """Runs one buildpack's ``bin/detect``: the environment it gets by Buildpack API, its plan
    file, the process and its output."""

    def __init__(self, inputs: DetectInputs, target: RunTarget) -> None:
        self.inputs = inputs
        self.target = target

    def run(self, el: Element, descriptor: BuildpackToml) -> DetectRun:
        """Run ``bin/detect`` of ``descriptor`` and read the plan it wrote."""
        api = ApiVersion.parse(descriptor.api)
        plan_dir = Path(tempfile.mkdtemp(prefix="plan."))
        try:
            plan_path = plan_dir / "plan.toml"
            plan_path.write_bytes(b"")
            plan_path.chmod(0o600)
            run = self._exec(descriptor, api, plan_path)
            if run.code != CODE_PASS:
                return run
            try:
                run.plan = DetectPlan.model_validate(_toml.load(plan_path, error=LifecycleError) or {})
            except (LifecycleError, ValidationError) as exc:
                return DetectRun(code=-1, output=run.output, err=f"failed to parse build plan: {exc}")
        finally:
            shutil.rmtree(plan_dir, ignore_errors=True)
        if any(r.version for s in run.plan.alternatives() for r in s.requires):
            run.code = -1
            run.err = (f'buildpack {el.id} has a "version" key which is not supported. '
                       '"metadata.version" should be used instead')
        return run

    def _exec(self, descriptor: BuildpackToml, api: ApiVersion, plan_path: Path) -> DetectRun:
        inputs = self.inputs
        base = inputs.environ
        platform = None if descriptor.buildpack.clear_env else inputs.platform_dir
        try:
            env = BuildEnv(base).with_overrides(platform, inputs.build_config_dir)
        except LifecycleError as exc:
            raise LifecycleError(exc.message, ExitCode.DETECT_OTHER) from None
        env["CNB_BUILDPACK_DIR"] = str(descriptor.dir)
        if api >= ApiVersion(0, 8):
            env["CNB_PLATFORM_DIR"] = str(inputs.platform_dir)
            env["CNB_BUILD_PLAN_PATH"] = str(plan_path)
        if api >= ApiVersion(0, 10):
            env.update(self.target.env())
        if api >= ApiVersion(0, 12) and inputs.exec_env:
            env["CNB_EXEC_ENV"] = inputs.exec_env
        exe = descriptor.dir / "bin" / "detect"
        try:
            proc = subprocess.run([str(exe), str(inputs.platform_dir), str(plan_path)], cwd=inputs.app_dir,
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, check=False)
        except OSError as exc:
            return DetectRun(code=-1, err=f"fork/exec {exe}: {exc.strerror or exc}")
        output = proc.stdout.decode(errors="replace")
        if proc.returncode < 0:
            return DetectRun(code=-1, output=output, err=f"signal: {-proc.returncode}")
        return DetectRun(code=proc.returncode, output=output)


class _Resolver:
    """Upstream's ``DefaultDetectResolver``: a group's detect runs -> the buildpacks that
    participate and the build plan (``[[or]]`` alternatives tried in order, optional buildpacks
    dropped when they break it)."""

    def __init__(self, log: _HeldLog) -> None:
        self.log = log

    def resolve(self, done: list[Element], by_key: Mapping[str, DetectRun]
                ) -> tuple[list[Element], list[PlanEntry]]:
        """The participating buildpacks of ``done`` and the build plan, from their detect runs;
        :class:`_NoGroup` when the group does not pass."""
        runs: list[DetectRun] = []
        for el in done:
            run = by_key.get(el.key)
            if run is None:
                raise LifecycleError(f"failed to detect: missing detection of '{el.key}'", ExitCode.DETECT_OTHER)
            log = self.log.debug if run.code in (CODE_PASS, CODE_FAIL) else self.log.info
            if run.output:
                log(f"======== Output: {el} ========")
                log(run.output.removesuffix("\n"))
            if run.err:
                log(f"======== Error: {el} ========")
                log(run.err)
            runs.append(run)
        self.log.debug("======== Results ========")
        results: list[tuple[Element, DetectRun]] = []
        detected, any_detected, buildpack_error = True, False, False
        for el, run in zip(done, runs, strict=True):
            if run.code == CODE_PASS:
                self.log.debug(f"pass: {el}")
                results.append((el, run))
                any_detected = True
            elif run.code == CODE_FAIL:
                self.log.debug(f"{'skip' if el.optional else 'fail'}: {el}")
                detected = detected and el.optional
            else:
                self.log.info(f"err:  {el}" if run.code == -1 else f"err:  {el} ({run.code})")
                buildpack_error = True
                detected = detected and el.optional
        if not detected:
            raise _NoGroup(buildpack_error)
        if not any_detected:
            self.log.debug("fail: no viable buildpacks in group")
            raise _NoGroup(False)

        counter = [0]

        def attempt(trial: list[Option]) -> tuple[dict[str, _Dep], list[Option]]:
            counter[0] += 1
            return self.run_trial(counter[0], trial)

        deps, trial = _run_trials(results, [], attempt)
        if len(done) != len(trial):
            self.log.info(f"{len(trial)} of {len(done)} buildpacks participating")
        width = max(len(el.id) for el, _ in trial)
        for el, _ in trial:
            self.log.info(f"{el.id:<{width}} {el.version}")
        found = [replace(el, optional=False) for el, _ in trial]
        plan = [PlanEntry(providers=[Provider(id=p.id, version=p.version) for p in dep.providers],
                          requires=dep.requires) for dep in deps.values()]
        return found, plan

    def run_trial(self, i: int, trial: list[Option]) -> tuple[dict[str, _Dep], list[Option]]:
        self.log.debug(f"Resolving plan... (try #{i})")
        while True:
            retry = False
            deps = _dep_map(trial)
            # Unmet requires first, then unused provides, each over every dependency (upstream's order).
            for what in ("requires", "provides unused"):
                for name, dep in deps.items():
                    for el in dep.early_requires if what == "requires" else dep.extra_provides:
                        retry = True
                        if not el.optional:
                            self.log.debug(f"fail: {el} {what} {name}")
                            raise _NoGroup(False)
                        self.log.debug(f"skip: {el} {what} {name}")
                        trial = [o for o in trial if o[0] != el]
            if not retry:
                break
        if not trial:
            self.log.debug("fail: no viable buildpacks in group")
            raise _NoGroup(False)
        return deps, trial



class _Detector:
    """The order walk (upstream's ``detectOrder``/``detectGroup``): groups in order, composite
    buildpacks expanded in place, each buildpack run at most once; a candidate group goes to the
    resolver."""

    def __init__(self, inputs: DetectInputs, logger: Any) -> None:
        self.inputs = inputs
        self.logger = logger
        self.runs: dict[str, DetectRun] = {}
        self.descriptors: dict[str, BuildpackToml] = {}
        analyzed = analyzed_file.read(inputs.analyzed_path)
        if analyzed is None:
            logger.warning(f'No analyzed metadata found at path "{inputs.analyzed_path}"')
        self.target, from_host = run_target(analyzed)
        if from_host:
            logger.info("target distro name/version labels not found, reading /etc/os-release file")
        self.held = _HeldLog(logger)
        self.executor = _DetectExec(inputs, self.target)
        self.resolver = _Resolver(self.held)

    def flush(self, failed: bool) -> None:
        """Emit the resolver's held-back log lines."""
        self.held.flush(failed)

    def lookup(self, el: Element) -> BuildpackToml:
        if el.key not in self.descriptors:
            self.descriptors[el.key] = buildpack_file.lookup(self.inputs.buildpacks_dir, el.id, el.version)
        return self.descriptors[el.key]

    def verify(self, order: list[list[Element]]) -> None:
        for group in order:
            for el in group:
                try:
                    descriptor = self.lookup(el)
                except LifecycleError as exc:
                    raise LifecycleError(f"failed to initialize detector: {exc.message}",
                                         ExitCode.DETECT_OTHER) from None
                verify_buildpack_api(str(el), descriptor.api)

    def detect_order(self, order: list[list[Element]], done: list[Element], rest: list[Element],
                     optional: bool) -> tuple[list[Element], list[PlanEntry]]:
        buildpack_error = False
        for group in order:
            try:
                return self.detect_group([*group, *rest], done)
            except _NoGroup as exc:
                buildpack_error = buildpack_error or exc.buildpack_error
        if optional:
            return self.detect_group(rest, done)
        raise _NoGroup(buildpack_error)

    def detect_group(self, group: list[Element], done: list[Element]) -> tuple[list[Element], list[PlanEntry]]:
        done = list(done)
        pending: list[tuple[Element, BuildpackToml]] = []
        for i, el in enumerate(group):
            if any(d.id == el.id for d in done):
                continue
            try:
                descriptor = self.lookup(el)
            except LifecycleError as exc:
                raise LifecycleError(f"failed to detect: {exc.message}", ExitCode.DETECT_OTHER) from None
            if descriptor.is_composite:
                self.run_pending(pending)
                return self.detect_order(_order_elements(descriptor.order), done, group[i + 1:], el.optional)
            el_done = replace(el, api=descriptor.api, homepage=descriptor.buildpack.homepage)
            if not self.target_matches(descriptor) and not el.optional:
                done.append(el_done)
                self.runs[el.key] = DetectRun(
                    code=-1, err="unable to satisfy target os/arch constraints; run image: "
                                 f"{self.target}, buildpack: {descriptor.target_list()}")
                continue
            if not self.exec_env_matches(el, descriptor):
                continue
            done.append(el_done)
            pending.append((el_done, descriptor))
        self.run_pending(pending)
        return self.resolver.resolve(done, self.runs)

    def target_matches(self, descriptor: BuildpackToml) -> bool:
        targets = descriptor.target_list()
        if not targets:
            return True
        for spec in targets:
            self.logger.debug(f"Checking for match against descriptor: {spec.model_dump(exclude_defaults=True)}")
            if self.target.satisfies(spec):
                return True
        return False

    def exec_env_matches(self, el: Element, descriptor: BuildpackToml) -> bool:
        env = self.inputs.exec_env
        if self.inputs.platform_api < ApiVersion(0, 15) or not env:
            return True
        if ApiVersion.parse(descriptor.api) < ApiVersion(0, 12):
            return True
        supported = descriptor.buildpack.exec_env
        if not supported or "*" in supported or env in supported:
            return True
        self.logger.debug(f"Skipping {el} due to execution environment mismatch; current: {env}, "
                          f"buildpack supports: {supported}")
        return False

    def run_pending(self, pending: list[tuple[Element, BuildpackToml]]) -> None:
        todo = [(el, d) for el, d in pending if el.key not in self.runs]
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            results = list(pool.map(lambda item: self.executor.run(*item), todo))
        for (el, _), run in zip(todo, results, strict=True):
            self.runs[el.key] = run


def _options(el: Element, run: DetectRun) -> list[Option]:
    alternatives = run.plan.alternatives()
    last = len(alternatives) - 1
    return [(replace(el, optional=el.optional and i == last), sections) for i, sections in enumerate(alternatives)]


def _run_trials(results: list[tuple[Element, DetectRun]], prefix: list[Option],
                attempt: Callable[[list[Option]], tuple[dict[str, _Dep], list[Option]]]
                ) -> tuple[dict[str, _Dep], list[Option]]:
    if not results:
        return attempt(prefix)
    last: _NoGroup | None = None
    for option in _options(*results[0]):
        try:
            return _run_trials(results[1:], [*prefix, option], attempt)
        except _NoGroup as exc:
            last = exc
    raise last if last is not None else _NoGroup(False)


@dataclass(frozen=True)
class DetectResult:
    """What the detector writes: ``group.toml`` and ``plan.toml``."""

    group: Group
    plan: Plan


def read_order(inputs: DetectInputs, logger: Any) -> list[list[Element]]:
    """``order.toml`` merged with ``system.toml``; extensions are refused (exit 22)."""
    try:
        order = order_file.read(inputs.order_path)
    except LifecycleError as exc:
        raise LifecycleError(f"failed to initialize detector: reading order: {exc.message}",
                             ExitCode.DETECT_OTHER) from None
    if order.order_extensions:
        raise LifecycleError("failed to detect: order contains extensions, which this lifecycle does not support",
                             ExitCode.DETECT_OTHER)
    return _with_system(_order_elements(order.order), inputs, logger)


def detect(inputs: DetectInputs, logger: Any) -> DetectResult:
    """Run detection; raise :class:`LifecycleError` with exit 20/21/22 when no group passes."""
    order = read_order(inputs, logger)
    detector = _Detector(inputs, logger)
    detector.verify(order)
    try:
        found, entries = detector.detect_order(order, [], [], False)
    except _NoGroup as exc:
        detector.flush(failed=True)
        logger.error("No buildpack groups passed detection.")
        if exc.buildpack_error:
            raise LifecycleError("failed to detect: buildpack(s) failed with err",
                                 ExitCode.DETECT_BUILDPACK_ERROR) from None
        logger.error("Please check that you are running against the correct path.")
        raise LifecycleError("failed to detect: no buildpacks participating", ExitCode.DETECT_FAIL) from None
    except LifecycleError:
        detector.flush(failed=True)
        raise
    detector.flush(failed=False)
    group = Group(group=[GroupEntry(id=e.id, version=e.version, api=e.api, homepage=e.homepage) for e in found])
    return DetectResult(group=group, plan=Plan(entries=entries))


def write_detected(result: DetectResult, group: Path, plan: Path) -> None:
    """``group.toml`` and ``plan.toml`` (exit 22 when they cannot be written)."""
    from lifecycle.files import group as group_file
    from lifecycle.files import plan as plan_file

    try:
        group_file.write(group, result.group)
        plan_file.write(plan, result.plan)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise LifecycleError(f"failed to detect: {exc.strerror or exc}{where}", ExitCode.DETECT_OTHER) from None
