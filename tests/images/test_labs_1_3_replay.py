"""docs/labs-1-3.md replayed command by command (docker and podman where the page gives both)
against the workshop's registry on 127.0.0.1:5000 and a Compose stack on 8089/3308, with what
each command prints held to the sample the page shows after it (tests/images/labdoc.py says how).

Every command of the page is named below once, and test_every_command_of_the_page_is_replayed
fails when the page gains or loses one, so the page and this replay cannot drift apart. Tests
run in file order: lab 1, 2, 3, on one registry and one stack.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from support.net import free_port
from support.registry import Registry, ensure_free

from . import helpers
from .conftest import Images
from .helpers import REPO, get, run, wait_for
from .labdoc import LabDoc, json_mismatches, mask, pseudo_json, sample_mismatch
from .labrun import PrivateStore, Shell, TagGuard

# Generous: the first test of a cold run also pays for the session's image builds.
pytestmark = pytest.mark.timeout(1800)

DOC = REPO / "docs" / "labs-1-3.md"

# --- lab 1 ---------------------------------------------------------------------------------
BUILD_WEB_V1 = (
    "docker build -f images/web/Dockerfile --build-arg FLAVOR=v1 -t localhost:5000/roar-web:v1 ."
)
BUILD_WEB_V2 = (
    "docker build -f images/web/Dockerfile --build-arg FLAVOR=v2 -t localhost:5000/roar-web:v2 ."
)
BUILD_DB = "docker build -f images/db/Dockerfile -t localhost:5000/roar-db:v1 ."
PODMAN_BUILD = (
    "podman build --format docker -f images/web/Dockerfile --build-arg FLAVOR=v1 "
    "-t localhost:5000/roar-web:v1 ."
)
IMAGES_TABLE = "docker images --format 'table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}'"
REGISTRY_CONFIG = "cat > /etc/docker/registry/roar.yml <<'EOF'"  # first line; the YAML follows
PUSHES = (
    "docker push localhost:5000/roar-web:v1",
    "docker push localhost:5000/roar-web:v2",
    "docker push localhost:5000/roar-db:v1",
)
PODMAN_PUSH = "podman push --tls-verify=false localhost:5000/roar-web:v1"
RELEASE_TAGS = (
    "docker tag localhost:5000/roar-web:v1 localhost:5000/roar-web:0.2.0",
    "docker tag localhost:5000/roar-db:v1 localhost:5000/roar-db:0.2.0",
    "docker push localhost:5000/roar-web:0.2.0; docker push localhost:5000/roar-db:0.2.0",
)
CATALOG = "curl -s localhost:5000/v2/_catalog"
TAGS_LIST = "curl -s localhost:5000/v2/roar-web/tags/list"
SKOPEO_TAGS = "skopeo list-tags --tls-verify=false docker://localhost:5000/roar-db"
IMAGE_ID = "docker image inspect --format '{{.Id}}' localhost:5000/roar-web:v1"
RMI = "docker rmi localhost:5000/roar-web:v1"
PULL = "docker pull localhost:5000/roar-web:v1"
HELM_PACKAGE = "helm package deploy/helm/roar"
HELM_PUSH = "helm push roar-0.2.0.tgz oci://localhost:5000/charts --plain-http"
HELM_SHOW = "helm show chart oci://localhost:5000/charts/roar --version 0.2.0 --plain-http"
HELM_PULL = "helm pull oci://localhost:5000/charts/roar --version 0.2.0 --plain-http"  # prose
# --- lab 2 ---------------------------------------------------------------------------------
ENV_FILE = "cp .env.example .env      # then put real passwords in .env"
UP = "docker compose up -d --wait"
PS = "docker compose ps -a"
VERSION = "curl -s 127.0.0.1:8089/roar/api/v1/status/version"
READYZ = "curl -s 127.0.0.1:8089/readyz"
LEGACY_LIST = "curl -s 127.0.0.1:8089/roar/api/v1/registry"
POST_AGENT = (
    "curl -s -X POST -H 'Content-Type: application/json' 127.0.0.1:8089/api/v1/agents \\\n"
    '    -d \'{"name":"Woody Woodpecker","species":"bird","service_start":"1959-05-22",'
    '"service_last":"1979-04-15","adversary_name":"Buzz Buzzard","adversary_tech":'
    '"menacing stare"}\''
)
STOP_DB = "docker compose stop db"
LIST_PAST_TTL = "sleep 2; curl -s -w ' %{http_code}\\n' 127.0.0.1:8089/roar/api/v1/registry"
READYZ_CODE = "curl -s -w ' %{http_code}\\n' 127.0.0.1:8089/readyz"
HEALTHZ_CODE = "curl -s -w ' %{http_code}\\n' 127.0.0.1:8089/healthz"
START_DB = "docker compose start db"  # prose
# --- lab 3 ---------------------------------------------------------------------------------
INSPECT_WEB = "docker inspect roar-web-1"
DB_HEALTH = "docker inspect roar-db-1 --format '{{json .State.Health}}'"
LOGS_WEB = "docker logs roar-web-1"
LOGS_MIGRATE = "docker logs roar-migrate-1"
LOGS_DB = "docker logs roar-db-1 2>&1 | grep Entrypoint"
HISTORY = "podman history localhost:5000/roar-web:v1"
PORT_WEB = "docker port roar-web-1"
PORT_DB = "docker port roar-db-1"
SELECT_TTY = "docker exec -it roar-db-1 mariadb -uadmin -padmin registry -e 'select * from agents'"
DAFFY = "'Daffy Duck', 'duck', '1937-04-17', '1968-01-01', 'Elmer Fudd', 'duck season signs'"
INSERT_6 = f'docker exec roar-db-1 mariadb -uadmin -padmin registry -e "INSERT INTO agents VALUES (6, {DAFFY})"'  # noqa: E501
INSERT_NULL = (
    "docker exec roar-db-1 mariadb -uadmin -padmin registry -e "
    f'"INSERT INTO agents VALUES (NULL, {DAFFY}); SELECT id, NAME FROM agents WHERE id > 5"'
)
WEB_ID = "docker exec roar-web-1 id"
WEB_TOUCH = "docker exec roar-web-1 touch /opt/roar/x"

REPLAYED = (
    BUILD_WEB_V1, BUILD_WEB_V2, BUILD_DB, PODMAN_BUILD, IMAGES_TABLE, REGISTRY_CONFIG, *PUSHES,
    PODMAN_PUSH, *RELEASE_TAGS, CATALOG, TAGS_LIST, SKOPEO_TAGS, IMAGE_ID, RMI, PULL,
    HELM_PACKAGE, HELM_PUSH, HELM_SHOW, ENV_FILE, UP, PS, VERSION, READYZ, LEGACY_LIST,
    POST_AGENT, STOP_DB, LIST_PAST_TTL, READYZ_CODE, HEALTHZ_CODE, INSPECT_WEB, DB_HEALTH,
    LOGS_WEB, LOGS_MIGRATE, LOGS_DB, HISTORY, PORT_WEB, PORT_DB, SELECT_TTY, INSERT_6,
    INSERT_NULL, WEB_ID, WEB_TOUCH,
)  # fmt: skip
NOT_REPLAYED = {
    'docker build -f images/web/Dockerfile --build-arg FLAVOR=v2 \\\n  --build-arg REVISION="$('
    'git rev-parse --short HEAD)" \\\n  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
    "-t localhost:5000/roar-web:v2 .": "BUILD_WEB_V2 plus labels; the session builds with a "
    "REVISION and test_web_image.py checks the labels",
    "apt-get install -y docker-registry skopeo": "scripts/setup/containers.sh installs them",
    "docker-registry serve /etc/docker/registry/roar.yml &": "the registry fixture serves the "
    "page's configuration (test_lab1_registry_runs_with_the_pages_configuration)",
}
#: The lab's image names, and the session build (tests/images/helpers.py) each one is.
LAB_NAMES = {
    "localhost:5000/roar-web:v1": helpers.WEB_V1,
    "localhost:5000/roar-web:v2": helpers.WEB_V2,
    "localhost:5000/roar-db:v1": helpers.DB,
}
#: "The workshop's values work as they are" (lab 2); the exec commands of lab 3 use them.
WORKSHOP_ENV = {"MYSQL_PASSWORD": "admin", "MYSQL_ROOT_PASSWORD": "root+1"}
PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"


def podman_form(command: str) -> str:
    """The page's rule for podman: builds add --format docker, pushes --tls-verify=false."""
    engine, verb, rest = command.split(" ", 2)
    assert engine == "docker", command
    extra = {"build": " --format docker", "push": " --tls-verify=false"}.get(verb, "")
    return f"podman {verb}{extra} {rest}"


@dataclass
class Lab:
    doc: LabDoc
    sh: Shell
    registry: Registry
    docker: tuple[str, ...]
    tags: TagGuard = field(default_factory=TagGuard)
    store: PrivateStore | None = None
    stack: bool = False

    def check(self, command: str, output: str) -> None:
        mismatch = sample_mismatch(self.doc.sample(command), output)
        assert mismatch is None, f"$ {command}\n{mismatch}"

    def replay(self, command: str, *, rc: int = 0, timeout: float = 300) -> str:
        """Run a ``$`` command of the page and hold its output to the page's sample."""
        self.doc.sample(command)  # before running: fails at once if the page dropped it
        out = self.sh(command, rc=rc, timeout=timeout)
        self.check(command, out)
        return out


@pytest.fixture(scope="module")
def lab(
    registry: Registry,
    docker_images: Images,
    dockerd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("labs-1-3")
    project = work / "roar"  # a learner's checkout, as far as the labs read it
    project.mkdir()
    for name in ("compose.yaml", ".env.example"):
        shutil.copy(REPO / name, project / name)
    (project / "deploy").symlink_to(REPO / "deploy")
    lab = Lab(
        doc=LabDoc.load(DOC),
        sh=Shell(project, dockerd, work),
        registry=registry,
        docker=("docker", "-H", dockerd),
        store=PrivateStore(work / "podman-store"),
    )
    try:
        yield lab
    finally:
        if lab.stack:
            lab.sh("docker compose down -v --timeout 20", rc=0, timeout=180)
        lab.tags.restore()
        if lab.store is not None:
            lab.store.remove()


# --- lab 1 ---------------------------------------------------------------------------------


def build_args(command: str) -> tuple[str, dict[str, str], str]:
    """(Dockerfile, build arguments, tag) of a ``docker build`` command line."""
    words = shlex.split(command)
    dockerfile, tag, args = "", "", {}
    for flag, value in itertools.pairwise(words):
        if flag == "-f":
            dockerfile = value
        elif flag == "-t":
            tag = value
        elif flag == "--build-arg":
            key, _, val = value.partition("=")
            args[key] = val
    return dockerfile, args, tag


def test_lab1_builds_are_the_sessions_and_get_the_labs_names(lab: Lab, images: Images) -> None:
    """The page's builds are the ones the session ran (same Dockerfile, same build arguments;
    the session adds the page's --format docker and a fixed REVISION), so the replay names the
    session's images as the lab does instead of building them again."""
    session = {tag: (dockerfile, build_args(" ".join(extra))[1]) for tag, dockerfile, extra in
               helpers.BUILDS}  # fmt: skip
    assert lab.doc.require(PODMAN_BUILD) == podman_form(BUILD_WEB_V1)
    for command in (BUILD_WEB_V1, BUILD_WEB_V2, BUILD_DB):
        dockerfile, args, name = build_args(lab.doc.require(command))
        assert session[LAB_NAMES[name]] == (dockerfile, args), command
    for name, built in LAB_NAMES.items():
        # docker format: the health check is kept (the OCI format would have dropped it).
        health = run(["podman", "image", "inspect", "--format", "{{json .Config.Healthcheck}}",
                      built]).stdout  # fmt: skip
        assert "CMD" in health, f"{built} has no HEALTHCHECK: {health}"
        lab.tags.tag(("podman",), built, name)
        lab.tags.tag(lab.docker, built, name)


@pytest.mark.parametrize("dockerfile", ["images/web/Dockerfile", "images/operator/Dockerfile"])
def test_lab1_user_step_prints_no_warning(podman: None, dockerfile: str) -> None:
    """The Dockerfile's user step, run on its base as the build runs it: silent (no useradd
    SYS_UID_MAX warning), and the user is 10001:10001."""
    text = (REPO / dockerfile).read_text().replace("\\\n", " ")
    step = next(ln for ln in text.splitlines() if ln.startswith("RUN ") and "useradd" in ln)
    script = f"{{ {step.removeprefix('RUN ')} ; }} 2>&1; id roar"
    out = run(["podman", "run", "--rm", "--pull=never", PYTHON_BASE, "sh", "-c", script]).stdout
    assert out.strip() == "uid=10001(roar) gid=10001(roar) groups=10001(roar)", out


def test_lab1_docker_build_notice_is_the_pages(lab: Lab, tmp_path: Path) -> None:
    """What `docker build` prints before it starts (the notice is the CLI's, not the build's),
    shown on a one-line Dockerfile rather than by building ROAR again."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nLABEL io.roar.replay=notice\n")
    client = lab.sh("docker version --format '{{.Client.Version}}'").strip()
    buildx = lab.sh("docker buildx version >/dev/null 2>&1; echo $?").strip() == "0"
    out = lab.sh(f"docker build -t roar-replay-notice:1 {context}")
    try:
        if int(client.split(".")[0]) >= 23 and not buildx:
            lab.check(BUILD_WEB_V1, out)
        else:
            assert "DEPRECATED" not in out, out
    finally:
        run([*lab.docker, "rmi", "roar-replay-notice:1"], check=False)


def rows_and_sizes(text: str) -> dict[str, float]:
    """{"repository:tag": size in MB} of an images table."""
    units = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"(\S+)\s+(\S+)\s+\S+\s+([\d.]+) ?(B|kB|KB|MB|GB)\s*$", line)
        if m:
            out[f"{m[1]}:{m[2]}"] = float(m[3]) * units[m[4]]
    return out


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_lab1_images_table(lab: Lab, engine: str) -> None:
    """The page's rows are there (names, and sizes within 15 %: they move a little with the
    dependencies and between engines); the engine lists other images too, in its own order."""
    command = lab.doc.require(IMAGES_TABLE).replace("docker", engine, 1)
    out = lab.sh(command)
    sample = lab.doc.sample(IMAGES_TABLE)
    real = {mask(ln) for ln in out.splitlines()}
    assert mask(out.splitlines()[0]) == mask(sample[0])
    missing = [ln for ln in sample[1:] if mask(ln) not in real]
    assert not missing, f"$ {command}\nrows not shown: {missing}\n{out}"
    sizes = rows_and_sizes(out)
    for name, size in rows_and_sizes("\n".join(sample)).items():
        assert abs(sizes[name] - size) <= 0.15 * size, (name, size, sizes[name])


def test_lab1_registry_runs_with_the_pages_configuration(lab: Lab) -> None:
    command = next(c for c in lab.doc.commands if c.startswith(REGISTRY_CONFIG))
    page = yaml.safe_load(lab.doc.heredoc(command))
    ours = yaml.safe_load(lab.registry.config.read_text())
    page["storage"]["filesystem"]["rootdirectory"] = str(lab.registry.storage)
    assert json_mismatches(page, ours) == []
    reply = get(f"{lab.registry.url}/v2/")
    assert reply.status == 200 and reply.headers["Docker-Distribution-Api-Version"] == (
        "registry/2.0"
    )


def test_lab1_podman_push_then_pull_into_an_empty_store(lab: Lab) -> None:
    """podman pushes the three images (the page's podman form); pulled into a store that held
    nothing, each has the image ID it was pushed with and the registry's manifest digest, and
    the web image pulled so serves its flavor."""
    assert lab.doc.require(PODMAN_PUSH) == podman_form(PUSHES[0])
    assert lab.store is not None
    for command in PUSHES:
        lab.sh(podman_form(lab.doc.require(command)))
    for name in LAB_NAMES:
        digest = lab.sh(
            f"skopeo inspect --tls-verify=false --format '{{{{.Digest}}}}' docker://{name}"
        ).strip()
        local = run(["podman", "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()
        lab.store("pull", "-q", "--tls-verify=false", name)
        pulled = lab.store("image", "inspect", "--format", "{{.Id}} {{.Digest}}", name).split()
        assert pulled == [local, digest], name
    port = free_port()
    lab.store("run", "-d", "--name", "roar-replay-pulled", "-p", f"127.0.0.1:{port}:8080",
              "--read-only", "--tmpfs", "/tmp", "localhost:5000/roar-web:v2")  # fmt: skip
    version = f"http://127.0.0.1:{port}/roar/api/v1/status/version"
    wait_for("the pulled web image", lambda: get(version).body == "<p>Version</p>00.02.00")


def as_sets(value: dict[str, object]) -> dict[str, object]:
    return {k: sorted(v) if isinstance(v, list) else v for k, v in value.items()}


def test_lab1_docker_push_list_and_pull_back(lab: Lab) -> None:
    for command in PUSHES:
        lab.sh(lab.doc.require(command))
    for name in ("localhost:5000/roar-web:0.2.0", "localhost:5000/roar-db:0.2.0"):
        lab.tags.remember(lab.docker, name)
    for command in RELEASE_TAGS:
        lab.sh(lab.doc.require(command))
    for command in (CATALOG, TAGS_LIST, SKOPEO_TAGS):
        # As JSON, each list as a set: the registry lists tags in no particular order.
        shown, real = json.loads("".join(lab.doc.sample(command))), json.loads(lab.sh(command))
        assert as_sets(real) == as_sets(shown), f"$ {command}\n{real}"
    before = lab.replay(IMAGE_ID).strip()
    lab.replay(RMI)
    lab.replay(PULL)
    after = lab.replay(IMAGE_ID).strip()
    built = run([*lab.docker, "image", "inspect", "--format", "{{.Id}}", helpers.WEB_V1]).stdout
    assert before == after == built.strip()


def test_lab1_chart_as_an_oci_artifact(lab: Lab) -> None:
    if not (helpers.CACHE / "bin" / "helm").exists():
        from manifests.helpers import ensure_tools

        ensure_tools()
    lab.sh(lab.doc.require(HELM_PACKAGE))
    lab.sh(lab.doc.require(HELM_PUSH))
    chart = lab.sh.cwd / "roar-0.2.0.tgz"
    pushed = hashlib.sha256(chart.read_bytes()).hexdigest()
    assert lab.registry.api("/v2/charts/roar/tags/list")["tags"] == ["0.2.0"]
    lab.replay(HELM_SHOW)
    assert f"`{HELM_PULL}`" in DOC.read_text()
    chart.unlink()
    lab.sh(HELM_PULL)
    assert hashlib.sha256(chart.read_bytes()).hexdigest() == pushed


# --- lab 2 ---------------------------------------------------------------------------------


def refuse_foreign_stack(lab: Lab) -> None:
    """`up` would take over an existing project `roar` (a learner's): only a stack left by a
    test run (its directory a pytest temp dir) is taken down first."""
    project = "label=com.docker.compose.project=roar"
    workdir = '{{.Label "com.docker.compose.project.working_dir"}}'
    dirs = run([*lab.docker, "ps", "-a", "--filter", project, "--format", workdir]).stdout.split()
    if dirs and all("/pytest-of-" in d for d in dirs):
        lab.sh("docker compose -p roar down -v --timeout 20")
    elif dirs:
        pytest.fail(
            f"a Compose project `roar` exists on {lab.docker[2]} (from {set(dirs)}); the lab "
            "would replace it: take it down first (docker compose -p roar down)"
        )
    volumes = run([*lab.docker, "volume", "ls", "-q", "--filter", project]).stdout.split()
    if volumes:
        pytest.fail(f"volumes {volumes} exist on {lab.docker[2]}: lab 2 starts from none")
    ensure_free(8089, "lab 2's web")
    ensure_free(3308, "lab 2's database")


def test_lab2_compose_up_waits_for_a_healthy_stack(lab: Lab) -> None:
    refuse_foreign_stack(lab)
    lab.sh(lab.doc.require(ENV_FILE))
    env = lab.sh.cwd / ".env"
    text = env.read_text()
    for key, value in WORKSHOP_ENV.items():
        text = re.sub(rf"(?m)^{key}=.*$", f"{key}={value}", text)
    env.write_text(text)
    lab.stack = True
    lab.replay(UP)
    lab.replay(PS)


def test_lab2_both_apis_and_the_new_agents_id(lab: Lab) -> None:
    for command in (VERSION, READYZ, LEGACY_LIST, POST_AGENT):
        lab.replay(command)


def test_lab2_database_stop_within_the_freshness_bound(lab: Lab) -> None:
    """Right after `stop db` the list may still come from the snapshot (200, with the rows),
    never an empty table; past ROAR_CACHE_TTL it is 503; web is never restarted."""
    state = "{{.State.StartedAt}} {{.RestartCount}}"
    started = run([*lab.docker, "inspect", "--format", state, "roar-web-1"]).stdout
    lab.replay(STOP_DB)
    try:
        right_after = get("http://127.0.0.1:8089/roar/api/v1/registry")
        assert right_after.status in (200, 503), right_after
        if right_after.status == 200:
            assert "Woody Woodpecker" in right_after.body
        for command in (LIST_PAST_TTL, READYZ_CODE, HEALTHZ_CODE):
            lab.replay(command)
    finally:
        assert f"`{START_DB}`" in DOC.read_text()
        lab.sh(START_DB)
        # Lab 3 looks at a settled stack: the db's own health check passes again.
        health = [*lab.docker, "inspect", "--format", "{{.State.Health.Status}}", "roar-db-1"]
        wait_for("db healthy again", lambda: run(health).stdout.strip() == "healthy", timeout=90)
    wait_for("readyz 200 after start db", lambda: get("http://127.0.0.1:8089/readyz").status
             == 200, timeout=90, interval=1)  # fmt: skip
    assert run([*lab.docker, "inspect", "--format", state, "roar-web-1"]).stdout == started


# --- lab 3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [INSPECT_WEB, DB_HEALTH])
def test_lab3_inspect(lab: Lab, command: str) -> None:
    real = json.loads(lab.sh(command))
    if isinstance(real, list):
        real = real[0]
    assert json_mismatches(pseudo_json(lab.doc.sample(command)), real) == []


@pytest.mark.parametrize("command", [LOGS_WEB, LOGS_MIGRATE, LOGS_DB])
def test_lab3_logs(lab: Lab, command: str) -> None:
    lab.replay(command)


def test_lab3_history_and_ports(lab: Lab) -> None:
    for command in (HISTORY, PORT_WEB, PORT_DB):
        lab.replay(command)


def test_lab3_exec(lab: Lab) -> None:
    """-it draws the table; a fixed id 6 is taken since lab 2, NULL picks 7; the web container
    is not root and its root filesystem is read-only."""
    lab.check(SELECT_TTY, lab.sh.tty(lab.doc.require(SELECT_TTY)))
    lab.replay(INSERT_6, rc=1)
    lab.replay(INSERT_NULL)
    lab.replay(WEB_ID)
    lab.replay(WEB_TOUCH, rc=1)


# --- the page as a whole -------------------------------------------------------------------


def test_every_command_of_the_page_is_replayed() -> None:
    """Each command of the page is replayed above or listed with the reason it is not."""

    def key(command: str) -> str:  # a here-document is named by its first line
        return command.split("\n", 1)[0] if "<<" in command.split("\n", 1)[0] else command

    on_page = {key(c) for c in LabDoc.load(DOC).commands}
    named = set(REPLAYED) | set(NOT_REPLAYED)
    assert sorted(on_page - named) == [], "commands of the page that nothing replays"
    assert sorted(named - on_page) == [], "replayed commands that the page no longer gives"
