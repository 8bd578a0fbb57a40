"""The model registry: models by name and version in annotated git tags, in the tag convention of
DVC's GTO, so tools that read GTO tags keep working (docs/registry.md, "Tags").

    NAME@vX.Y.Z        registers version vX.Y.Z of model NAME on the tagged (training) commit
    NAME#STAGE#N       assigns STAGE to the version registered on the tagged commit (N: a counter
                       over all of NAME's tags, one more than the highest so far)
    NAME@vX.Y.Z!#N     deregisters that version;  NAME#STAGE!#N unassigns the stage;
    NAME@deprecated#N  deprecates the model

Each tag's message is a subject line, then a `[gitrepro]` TOML table (the "card"): the output the
model is, its manifest id, the run that wrote it and that run's metrics; on stage tags, the
version. Everything is read from git (tags travel with `git push --tags` and `git clone`); tag
messages are untrusted, so a card that does not parse is reported with its version, never fatal.
Events are ordered by tagger time, then counter, as GTO orders them; a stage belongs to the version
that was assigned it last and not unassigned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import tomli_w

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import BadId, parse_id
from gitrepro.formats.pointer import Pointer
from gitrepro.formats.runrecord import RUN_ID, RUNS_DIR, RunRecord, is_record_path, record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import plumbing, tags, tracking
from gitrepro.repro.provenance.records import commit_records
from gitrepro.store.repo import Repo
from gitrepro.util import tomlcompat
from gitrepro.util.fsutil import UnsafePath, check_relpath

REGISTER, DEREGISTER, ASSIGN, UNASSIGN, DEPRECATE = "register", "deregister", "assign", "unassign", "deprecate"
CARD_FORMAT = 1
MAX_CARD_CHARS = 64 * 1024
MAX_METRICS = 4096

# GTO's gto/constants.py: `name`, `semver` (its named groups dropped) and `tag_re`.
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_/-]*[a-zA-Z0-9])?"
_SEMVER = (r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
           r"(?:-(?:(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
           r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?")
TAG_RE = re.compile(rf"(?P<artifact>(?:[a-zA-Z0-9_./-]+=)?{_NAME})"
                    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
                    rf"|@(?P<deprecated>deprecated)|@created)(?:#(?P<counter>[0-9]{{1,9}}))?")
REF_RE = re.compile(rf"(?P<name>{_NAME})(?:#(?P<stage>{_NAME})|@(?P<version>latest|v?{_SEMVER}))?")
NAME_RE, VERSION_RE = re.compile(_NAME), re.compile(rf"v?{_SEMVER}")


class RegistryError(GitreproError):
    pass


class UnknownModel(RegistryError):
    pass


@dataclass(frozen=True)
class Card:
    """What a tag message carries after its subject."""
    output: str = ""
    manifest: str = ""
    run: str = ""
    version: str = ""             # stage tags: the version assigned
    metrics: dict = field(default_factory=dict)   # {file: {flat key: value}}
    problem: str = ""             # why the [gitrepro] table could not be read ("" if it was, or is absent)


@dataclass(frozen=True)
class Event:
    action: str                   # register, deregister, assign, unassign or deprecate
    tag: str
    commit: str
    by: str                       # the tagger, "Name <email>"
    at: str                       # tagger time, ISO 8601 UTC
    subject: str
    signed: bool
    version: str = ""
    stage: str = ""
    counter: int = 0


@dataclass
class ModelVersion:
    name: str
    version: str
    commit: str
    tag: str
    registered_by: str
    registered_at: str
    message: str
    output: str
    manifest: str
    run: str
    metrics: dict
    signed: bool
    stages: list[str] = field(default_factory=list)
    active: bool = True           # False once deregistered
    problem: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Model:
    name: str
    versions: list[ModelVersion]  # newest version first (semantic version order)
    stages: dict[str, str]        # stage -> the version holding it now
    deprecated: bool
    history: list[Event]          # every tag of the model, oldest first


# ---------------------------------------------------------------- reading

def models(repo: Repo) -> dict[str, Model]:
    """Every model the repository's tags register, by name."""
    events: dict[str, list[tuple[tuple, Event, Card]]] = {}
    for tag in tags.list_annotated(repo.root):
        parsed = _event(tag)
        if parsed is not None:
            name, key, event, card = parsed
            events.setdefault(name, []).append((key, event, card))
    return {name: _model(name, sorted(found, key=lambda item: item[0])) for name, found in sorted(events.items())}


def _event(tag: tags.Tag) -> tuple[str, tuple, Event, Card] | None:
    m = TAG_RE.fullmatch(tag.name)
    if m is None or not (m["deprecated"] or m["version"] or m["stage"]):
        return None                                  # not a registry tag, or GTO's `@created`
    if m["deprecated"]:
        action = DEPRECATE
    elif m["version"]:
        action = DEREGISTER if m["cancel"] else REGISTER
    else:
        action = UNASSIGN if m["cancel"] else ASSIGN
    counter = int(m["counter"] or 0)
    card = parse_card(tag.message)
    at = datetime.fromtimestamp(tag.timestamp, timezone.utc).isoformat().replace("+00:00", "Z")
    event = Event(action, tag.name, tag.target, tag.tagger, at, tag.message.partition("\n")[0], tag.signed,
                  m["version"] or card.version, m["stage"] or "", counter)
    return m["artifact"].replace("=", ":"), (tag.timestamp, counter, tag.name), event, card


def _model(name: str, events: list[tuple[tuple, Event, Card]]) -> Model:
    versions: dict[str, ModelVersion] = {}
    assigned: dict[tuple[str, str], tuple] = {}      # (version, stage) -> when it was last assigned
    deprecated = False
    for key, e, card in events:
        if e.action == REGISTER and e.version not in versions:
            versions[e.version] = ModelVersion(name, e.version, e.commit, e.tag, e.by, e.at, e.subject, card.output,
                                               card.manifest, card.run, card.metrics, e.signed, problem=card.problem)
        elif e.action == DEREGISTER and e.version in versions:
            versions[e.version].active = False
        elif e.action in (ASSIGN, UNASSIGN):
            version = _assigned_version(versions, e)
            if version is None:
                continue
            if e.action == ASSIGN:
                assigned[(version, e.stage)] = key
            else:
                assigned.pop((version, e.stage), None)
        elif e.action == DEPRECATE:
            deprecated = True
    stages: dict[str, tuple[tuple, str]] = {}
    for (version, stage), key in assigned.items():
        if versions[version].active and (stage not in stages or key > stages[stage][0]):
            stages[stage] = (key, version)
    for stage, (_, version) in sorted(stages.items()):
        versions[version].stages.append(stage)
    ordered = sorted(versions.values(), key=lambda v: semver_key(v.version), reverse=True)
    return Model(name, ordered, {s: v for s, (_, v) in sorted(stages.items())}, deprecated, [e for _, e, _ in events])


def _assigned_version(versions: dict[str, ModelVersion], e: Event) -> str | None:
    """The version a stage tag is about: the one its card names, if registered on the tagged
    commit, else the one version registered there (GTO finds it by commit alone)."""
    if e.version in versions and versions[e.version].commit == e.commit:
        return e.version
    at_commit = [v.version for v in versions.values() if v.commit == e.commit]
    return at_commit[0] if len(at_commit) == 1 else None


def semver_key(version: str) -> tuple:
    """Semantic-version order: a release sorts after its pre-releases; build metadata ignored."""
    core, _, pre = version.lstrip("v").partition("+")[0].partition("-")
    nums = tuple(int(p) for p in core.split("."))
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return nums + ((1,) if not pre else (0,) + parts)


def parse_card(message: str) -> Card:
    """The `[gitrepro]` table at the end of a tag message; every field checked (untrusted)."""
    at = message.rfind("\n[gitrepro]\n")
    if at < 0:
        return Card()
    if len(message) - at > MAX_CARD_CHARS:
        return Card(problem=f"its [gitrepro] table is larger than {MAX_CARD_CHARS} characters")
    try:
        table = tomlcompat.loads(message[at + 1:]).get("gitrepro")
        if table.get("format") != CARD_FORMAT:
            return Card(problem=f"its [gitrepro] table has format {table.get('format')!r}; this gitrepro reads "
                                f"format {CARD_FORMAT}")
        return Card(_text(table, "output", check_relpath), _text(table, "manifest", lambda v: parse_id(v, "manifest")),
                    _text(table, "run", _run_id), _text(table, "version", _version), _metrics(table.get("metrics", {})))
    except (tomlcompat.TomlError, AttributeError, TypeError, ValueError, UnsafePath, BadId) as e:
        return Card(problem=f"its [gitrepro] table does not read ({str(e)[:200]})")


def _text(table: dict, key: str, check) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return check(value) if value else ""


def _run_id(value: str) -> str:
    if not RUN_ID.fullmatch(value):
        raise ValueError(f"run {value[:80]!r} is not a run id")
    return value


def _version(value: str) -> str:
    if not VERSION_RE.fullmatch(value):
        raise ValueError(f"version {value[:80]!r} is not a semantic version")
    return value


def _metrics(value) -> dict:
    """{file: {key: number, string or bool}}, at most MAX_METRICS values; anything else refused."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise TypeError("metrics must be a table of tables")
    if sum(len(v) for v in value.values()) > MAX_METRICS:
        raise ValueError(f"more than {MAX_METRICS} metrics")
    for table in value.values():
        if not all(isinstance(x, (int, float, str, bool)) and len(str(x)) <= 1024 for x in table.values()):
            raise TypeError("a metric must be a number, a string or a boolean")
    return value


def resolve(repo: Repo, ref: str) -> ModelVersion:
    """The version `NAME@vX.Y.Z`, `NAME#STAGE`, `NAME@latest` or `NAME` (the newest) names."""
    m = REF_RE.fullmatch(ref)
    if m is None:
        raise UnknownModel(f"{ref!r} does not name a model: use NAME@vX.Y.Z, NAME#STAGE or NAME")
    model = models(repo).get(m["name"])
    if model is None:
        raise UnknownModel(f"no model named {m['name']!r} is registered; see `gitrepro model list`")
    if m["stage"]:
        if m["stage"] not in model.stages:
            raise UnknownModel(f"no version of {model.name} holds stage {m['stage']!r} "
                               f"(stages: {', '.join(model.stages) or 'none'})")
        wanted = model.stages[m["stage"]]
    elif m["version"] in (None, "latest"):
        active = [v for v in model.versions if v.active]
        if not active:
            raise UnknownModel(f"{model.name} has no registered version left")
        return active[0]
    else:
        wanted = normal_version(m["version"])
    found = next((v for v in model.versions if v.version == wanted), None)
    if found is None:
        raise UnknownModel(f"{model.name} has no version {wanted} (versions: "
                           f"{', '.join(v.version for v in model.versions) or 'none'})")
    if not found.active:
        raise UnknownModel(f"{found.ref} was deregistered ({found.tag}!); register a new version")
    return found


def normal_version(version: str) -> str:
    if not VERSION_RE.fullmatch(version):
        raise RegistryError(f"version {version!r} is not a semantic version like 1.2.0 or v1.2.0")
    return version if version.startswith("v") else f"v{version}"


def registered_commits(repo: Repo) -> dict[str, list[str]]:
    """Commit -> the `NAME@vX.Y.Z` of every registered (not deregistered) version on it, for
    `verify --models`."""
    found: dict[str, list[str]] = {}
    for model in models(repo).values():
        for v in model.versions:
            if v.active:
                found.setdefault(v.commit, []).append(v.ref)
    return found


# ---------------------------------------------------------------- writing

def register(repo: Repo, name: str, version: str, rev: str = "HEAD", *, output: str | None = None,
             run: str | None = None, message: str | None = None, sign: bool = False) -> ModelVersion:
    """Tag commit `rev` as `NAME@vVERSION`: the model is dataset `output` there (default: the one
    output of its run), written by run `run` (default: the run record that wrote those files)."""
    check_name(name)
    version = normal_version(version)
    commit = plumbing.resolve_commit(rev, repo.root)
    existing = models(repo).get(name)
    if existing is not None:
        taken = [v for v in existing.versions if v.active and v.commit == commit]
        if taken:   # GTO allows one version per commit: a stage tag names its version by commit
            raise RegistryError(f"{commit[:12]} is already {taken[0].ref}; deregister it first "
                                f"(`gitrepro model deprecate {taken[0].ref}`)")
    ptr, rec = _model_files(repo, commit, output, run)
    metrics = {str(f): {str(k): v for k, v in t.items() if isinstance(v, (int, float, str, bool))}
               for f, t in (getattr(rec, "metrics", None) or {}).items() if isinstance(t, dict)}
    card = {"format": CARD_FORMAT, "output": ptr.path, "manifest": ptr.manifest, "run": rec.id if rec else "",
            "metrics": metrics}
    subject = message or f"Registering artifact {name} version {version}"
    tags.create(repo.root, f"{name}@{version}", commit, _message(subject, card), sign=sign)
    return resolve(repo, f"{name}@{version}")


def _model_files(repo: Repo, commit: str, output: str | None, run: str | None) -> tuple[Pointer, RunRecord | None]:
    """The pointer of the model's files at `commit` and the run record that wrote them."""
    pointers = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, commit)}
    records = _records_at(repo, commit)
    if run is not None:
        records = [r for r in records if r.id == run]
        if not records:
            raise RegistryError(f"commit {commit[:12]} has no run record {record_path(run)}")
    if output is None:
        outputs = sorted({o for r in records for o in r.outputs if o in pointers})
        if len(outputs) != 1:
            raise RegistryError(f"name the model's files with --output PATH (the runs at {commit[:12]} wrote "
                                f"{', '.join(outputs) or 'no tracked output'})")
        output = outputs[0]
    output = check_relpath(output.rstrip("/"))
    if output not in pointers:
        raise RegistryError(f"commit {commit[:12]} tracks no dataset {output} (no {output}.gitrepro)")
    ptr = pointers[output]
    writers = [r for r in records if output in r.outputs]
    if run is not None and not writers:
        raise RegistryError(f"run {run} did not write {output}")
    rec = max(writers, key=lambda r: r.id, default=None)
    if rec is not None and rec.outputs[output] != ptr.manifest:
        raise RegistryError(f"run {rec.id} wrote {output} as manifest {rec.outputs[output][:12]}, but the commit's "
                            f"pointer names {ptr.manifest[:12]}: register the commit that holds what the run wrote")
    return ptr, rec


def _records_at(repo: Repo, commit: str) -> list[RunRecord]:
    """The run records the commit adds; when it adds none, every record its tree holds."""
    records, _ = commit_records(repo.root, commit)
    if records:
        return records
    entries = [e for e in plumbing.ls_tree(commit, [RUNS_DIR], cwd=repo.root) if is_record_path(e.path)]
    blobs = plumbing.read_blobs([e.sha for e in entries], cwd=repo.root)
    found = []
    for e in entries:
        try:
            found.append(parse_record(blobs[e.sha], f"{commit[:12]}:{e.path}"))
        except GitreproError:
            continue      # a record that does not parse vouches for nothing
    return found


def promote(repo: Repo, ref: str, stage: str, *, message: str | None = None, sign: bool = False) -> Event:
    """Assign `stage` to the version `ref` names: tag `NAME#STAGE#N` on its commit."""
    mv = resolve(repo, ref)
    check_name(stage, "stage")
    subject = message or f"Assigning stage {stage} to artifact {mv.name} version {mv.version}"
    return _tag(repo, mv.name, f"{mv.name}#{stage}", mv.commit, subject, mv.version, sign)


def deprecate(repo: Repo, ref: str, stage: str | None = None, *, message: str | None = None,
              sign: bool = False) -> Event:
    """`NAME@vX.Y.Z STAGE`: unassign the stage; `NAME@vX.Y.Z`: deregister the version; `NAME`:
    deprecate the model (GTO's `deprecate` forms)."""
    m = REF_RE.fullmatch(ref)
    if m is None or m["stage"] or (m["version"] is None and stage):
        raise RegistryError(f"give NAME@vX.Y.Z [STAGE] or NAME, not {ref!r}")
    if m["version"] is None:
        model = models(repo).get(m["name"])
        if model is None or not model.versions:
            raise UnknownModel(f"no model named {m['name']!r} is registered; see `gitrepro model list`")
        newest = model.versions[0]
        return _tag(repo, model.name, f"{model.name}@deprecated", newest.commit,
                    message or f"Deprecating artifact {model.name}", "", sign)
    mv = resolve(repo, ref)
    if stage is not None:
        if stage not in mv.stages:
            raise RegistryError(f"{mv.ref} does not hold stage {stage!r} (it holds: {', '.join(mv.stages) or 'none'})")
        return _tag(repo, mv.name, f"{mv.name}#{stage}!", mv.commit,
                    message or f"Unassigning stage {stage} from artifact {mv.name} version {mv.version}", mv.version,
                    sign)
    return _tag(repo, mv.name, f"{mv.ref}!", mv.commit, message or f"Deregistering artifact {mv.name} version "
                f"{mv.version}", mv.version, sign)


def _tag(repo: Repo, name: str, stem: str, commit: str, subject: str, version: str, sign: bool) -> Event:
    """Create `stem#N` (N one more than the highest counter of any tag of model `name`, as GTO
    numbers them) and return its event."""
    model = models(repo).get(name)
    counter = 1 + max((e.counter for e in model.history), default=0) if model else 1
    card = {"format": CARD_FORMAT, **({"version": version} if version else {})}
    tag = f"{stem}#{counter}"
    tags.create(repo.root, tag, commit, _message(subject, card), sign=sign)
    return next(e for e in models(repo)[name].history if e.tag == tag)


def _message(subject: str, card: dict) -> str:
    subject = " ".join(subject.split()) or "gitrepro"
    return f"{subject}\n\n{tomli_w.dumps({'gitrepro': card})}"


def check_name(name: str, what: str = "model name") -> str:
    if not NAME_RE.fullmatch(name) or "//" in name or len(name) > 200:
        raise RegistryError(f"bad {what} {name!r}: letters, digits, '_', '-' and '/', starting and ending with "
                            f"a letter or digit (GTO's rule)")
    return name
