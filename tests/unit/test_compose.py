"""Compose files without root: reading (YAML as Compose reads it,
interpolation), the model and its warnings, Compose's names, the plan that
converges a running project, `config`, and the schema shipped for editors."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from nsbridge.compose import naming, parse, plan, render
from nsbridge.compose.load import ComposeError, Interpolator, load_dicts, load_project, parse_yaml
from nsbridge.model import Container, Network


def project(tmp_path, text: str, name: str | None = None, env: dict | None = None):
    d = tmp_path / "lab"
    d.mkdir(exist_ok=True)
    f = d / "compose.yaml"
    f.write_text(textwrap.dedent(text))
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return load_project([str(f)], name)
    finally:
        os.environ.clear()
        os.environ.update(old)


# -- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder,want", [("lab", "lab"), ("My Lab!", "mylab"), ("_x-Y.z", "x-yz"), ("Lab_2", "lab_2")])
def test_project_name_from_the_folder_is_normalised_as_compose_go_does(folder, want):
    assert naming.normalize_project_name(folder) == want


def test_a_given_project_name_is_checked_not_rewritten():
    assert naming.check_project_name("my-lab_2") == "my-lab_2"
    with pytest.raises(ComposeError.__mro__[1], match="invalid project name 'My'"):
        naming.check_project_name("My")


def test_names_of_containers_networks_and_built_images():
    assert naming.container_name("lab", "web", 1) == "lab-web-1"
    assert naming.network_name("lab", "default") == "lab_default"
    assert naming.built_image("lab", "app") == "lab-app"


# -- reading ----------------------------------------------------------------------------------
def test_yaml_is_read_as_compose_reads_it_yaml_1_2_scalars():
    doc = parse_yaml("a: 22:22\nb: yes\nc: on\nd: 8080\ne: true\nf: 1.5\ng: 0x1f\n", "x")
    # YAML 1.1 would give 1342, True, True: Compose (go-yaml v3) gives strings
    assert doc == {"a": "22:22", "b": "yes", "c": "on", "d": 8080, "e": True, "f": 1.5, "g": 31}


def test_a_yaml_error_is_one_line_with_the_line_number():
    with pytest.raises(ComposeError, match=r"^yaml: line 2: .*\(f.yaml\)$"):
        parse_yaml("a: 1\nb: c: d\n", "f.yaml")


@pytest.mark.parametrize("text,want", [
    ("${A}", "1"), ("$A", "1"), ("x${A}y", "x1y"), ("$$A", "$A"), ("${E:-d}", "d"), ("${E-d}", ""),
    ("${U:-d}", "d"), ("${U-d}", "d"), ("${A:+alt}", "alt"), ("${E:+alt}", ""), ("${E+alt}", "alt"),
    ("${U:-${A}}", "1"), ("${U:-${U2:-deep}}", "deep"), ("cost $5", "cost $5"),
])
def test_interpolation_forms(text, want):
    assert Interpolator({"A": "1", "E": ""}).text(text) == want


def test_required_variable_and_unset_variables():
    with pytest.raises(ComposeError, match="required variable U is missing a value: set it"):
        Interpolator({}).text("${U:?set it}")
    i = Interpolator({})
    assert i.text("${U}${U}$V") == ""
    assert i.unset == ["U", "V"]


def test_dot_env_and_override_files_are_read_as_compose_does(tmp_path):
    d = tmp_path / "lab"
    d.mkdir()
    (d / ".env").write_text("TAG=1.25\n# a comment\nPORT='8080'\n")
    (d / "compose.yaml").write_text("services:\n  web:\n    image: nginx:${TAG}\n    ports: ['${PORT}:80']\n")
    (d / "compose.override.yaml").write_text("services:\n  web:\n    ports: ['9090:80']\n    hostname: h\n")
    p = load_project(workdir=str(d))
    web = p.services["web"]
    assert (p.name, web.image, web.ports, web.hostname) == ("lab", "nginx:1.25", ["8080:80", "9090:80"], "h")
    assert len(p.files) == 2


def test_several_files_merge_maps_and_append_ports(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("services:\n  web:\n    image: nginx\n    ports: ['80']\n    command: a\n")
    b.write_text("services:\n  web:\n    ports: ['81']\n    command: b\n")
    doc, _ = load_dicts([str(a), str(b)], {})
    assert doc["services"]["web"] == {"image": "nginx", "ports": ["80", "81"], "command": "b"}


# -- the model and its warnings ------------------------------------------------------------------
WILD = """
version: "3.8"
services:
  web:
    image: nginx
    ports: ["8080:80", {target: 443, published: 8443, host_ip: 127.0.0.1, protocol: tcp}]
    volumes: [./site:/usr/share/nginx/html]
    healthcheck: {test: ["CMD", "true"]}
    deploy: {replicas: 1}
    networks: [front]
  db:
    image: mariadb
    command: --default-authentication-plugin=mysql_native_password
    volumes: [data:/var/lib/mysql]
    environment: [MYSQL_ROOT_PASSWORD=secret, UNSET_IN_SHELL]
    secrets: [pw]
    frobnicate: 3
  app:
    build: ./app
    depends_on:
      db: {condition: service_healthy}
    networks:
      front: {aliases: [api]}
      back: {priority: 10, ipv4_address: 10.5.0.9}
    extra_hosts: {gw: host-gateway}
networks:
  front: {}
  back:
    internal: true
    ipam: {config: [{subnet: 10.5.0.0/24, aux_addresses: {router: 10.5.0.2}}]}
volumes: {data: {}}
secrets: {pw: {file: ./pw}}
"""


def test_a_wild_file_loads_with_one_warning_line_per_key(tmp_path):
    p = project(tmp_path, WILD)
    assert p.warnings[:2] == [
        "the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
        "service 'app' has only build: nsbridge builds no images; it runs as image 'lab-app'",
    ]
    for key, tail in (("volumes", "(web, db)"), ("healthcheck", "(web)"), ("deploy", "(web)"), ("secrets", "(db)"),
                      ("frobnicate", "(db)")):
        lines = [w for w in p.warnings if w.startswith(key + " ")]
        assert len(lines) == 1 and lines[0].endswith(tail), (key, p.warnings)
    assert "frobnicate is ignored: not supported by nsbridge (db)" in p.warnings
    assert len(p.warnings) == 7


def test_the_model_of_a_wild_file(tmp_path):
    p = project(tmp_path, WILD)
    web, db, app = p.services["web"], p.services["db"], p.services["app"]
    assert web.ports == ["8080:80", "127.0.0.1:8443:443/tcp"]
    assert db.command == ["--default-authentication-plugin=mysql_native_password"]
    assert db.environment == ["MYSQL_ROOT_PASSWORD=secret"]  # a bare NAME unset in the shell is left out
    assert (app.built, app.image, app.depends_on) == (True, "lab-app", {"db": "service_healthy"})
    # Compose's NetworksByPriority: priority first, then by name
    assert [(n.key, n.ipv4_address, n.aliases) for n in app.networks] == [("back", "10.5.0.9", []), ("front", None, ["api"])]
    assert app.extra_hosts == ["gw:host-gateway"]
    assert [n.key for n in db.networks] == ["default"]
    assert p.networks["default"].name == "lab_default"
    back = p.networks["back"]
    assert (back.name, back.internal, back.subnet, back.aux_addresses) == ("lab_back", True, "10.5.0.0/24", {"router": "10.5.0.2"})
    assert parse.order(p) == ["web", "db", "app"]


@pytest.mark.parametrize("text,message", [
    ("services:\n  web:\n    image: x\n    networks: [nope]\n",
     'service "web" refers to undefined network nope: invalid compose project'),
    ("services:\n  web:\n    image: x\n    depends_on: [db]\n",
     'service "web" depends on undefined service "db": invalid compose project'),
    ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
     "dependency cycle detected: a -> b -> a"),
    ("services:\n  web:\n    command: x\n", 'service "web" has neither an image nor a build context specified'),
    ("services:\n  web:\n    image: x\n    network_mode: host\n    networks: [a]\nnetworks: {a: {}}\n",
     "declares mutually exclusive `network_mode` and `networks`"),
    ("services:\n  web:\n    image: x\n    scale: 2\n    container_name: w\n", "can't set container_name"),
    ("services:\n  web:\n    image: x\n    x-nsbridge: {impair: {lan: {delay: 5ms}}}\n",
     "services.web.x-nsbridge.impair.lan names a network service web is not on"),
    ("services:\n  web:\n    image: x\n    x-nsbridge: {link: {default: sideways}}\n", "must be up or down"),
    ("services:\n  web:\n    image: x\n    network_mode: service:db\n", 'network_mode refers to undefined service "db"'),
    ("services: {}\n", "no service selected"),
])
def test_files_compose_refuses_are_refused_with_compose_s_words(tmp_path, text, message):
    with pytest.raises(ComposeError, match=message.replace("(", r"\(").replace(")", r"\)").replace("`", ".")):
        project(tmp_path, text)


def test_x_nsbridge_impairments_and_link_states(tmp_path):
    p = project(tmp_path, """
        services:
          web:
            image: nginx
            networks: [lan]
            x-nsbridge:
              impair: {lan: {rate: 1mbit, delay: 50ms, jitter: 5ms, loss: 5%}}
              link: {lan: down}
        networks: {lan: {}}
    """)
    web = p.services["web"]
    assert (web.impair["lan"].rate, web.impair["lan"].loss, web.link_state) == ("1mbit", "5%", {"lan": "down"})


def test_profiles_select_services(tmp_path):
    text = "services:\n  a:\n    image: x\n  dbg:\n    image: x\n    profiles: [debug]\n"
    assert list(project(tmp_path, text).services) == ["a"]
    assert list(project(tmp_path, text, env={"COMPOSE_PROFILES": "debug"}).services) == ["a", "dbg"]


def test_project_name_precedence(tmp_path):
    text = "name: fromfile\nservices:\n  a:\n    image: x\n"
    assert project(tmp_path, text).name == "fromfile"
    assert project(tmp_path, text, name="given").name == "given"
    assert project(tmp_path, text, env={"COMPOSE_PROJECT_NAME": "env"}).name == "env"


# -- config ------------------------------------------------------------------------------------
def test_config_prints_compose_s_normalised_form(tmp_path):
    p = project(tmp_path, WILD)
    out = render.config_yaml(p)
    doc = parse_yaml(out, "config")
    assert doc["name"] == "lab" and list(doc) == ["name", "services", "networks"]
    assert doc["services"]["web"]["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "target": 443, "published": "8443", "host_ip": "127.0.0.1", "protocol": "tcp"},
    ]
    assert 'published: "8080"' in out  # a string that a reader would take for a number stays quoted
    assert doc["services"]["db"]["environment"] == {"MYSQL_ROOT_PASSWORD": "secret"}
    assert doc["services"]["app"]["networks"] == {"back": {"ipv4_address": "10.5.0.9", "priority": 10}, "front": {"aliases": ["api"]}}
    assert doc["networks"]["back"] == {"name": "lab_back", "ipam": {"config": [{"subnet": "10.5.0.0/24", "aux_addresses": {"router": "10.5.0.2"}}]}, "internal": True}
    # what config prints loads back to the same project
    again = tmp_path / "again"
    again.mkdir()
    (again / "compose.yaml").write_text(out)
    p2 = load_project([str(again / "compose.yaml")])
    assert p2.services["app"].networks == p.services["app"].networks
    assert p2.services["web"].ports == ["8080:80/tcp", "127.0.0.1:8443:443/tcp"]


# -- the plan -----------------------------------------------------------------------------------
SMALL = """
services:
  web:
    image: nginx
    networks: [front]
  db:
    image: redis
    networks: [back]
  app:
    image: alpine
    depends_on: [db]
    networks: [front, back]
networks:
  front: {}
  back: {ipam: {config: [{subnet: 10.9.0.0/24}]}}
"""


def running(p, changed: dict | None = None) -> plan.Observed:
    """The store as `up` of P would have left it (ids by name), with CHANGED
    settings applied to the recorded labels."""
    nets = {}
    for key, nd in p.networks.items():
        nets[nd.name] = Network(id="n-" + nd.name, name=nd.name, driver="bridge", created="t",
                                labels=plan.network_labels(p, nd))
    cs, attached = [], {}
    for w in plan.wanted(p):
        c = Container(id="c-" + w.name, name=w.name, created="t", state="running", labels=dict(w.labels))
        cs.append(c)
        attached[c.id] = {"n-" + a.network for a in w.attach}
    return plan.Observed(cs, list(nets.values()), attached)


def actions(pl: plan.Plan) -> list[tuple[str, str, str]]:
    return [(s.kind, s.name, s.action) for s in pl.steps]


def test_a_new_project_is_created_networks_first_then_by_dependency(tmp_path):
    p = project(tmp_path, SMALL)
    got = actions(plan.make(p, plan.Observed()))
    assert got == [
        ("network", "lab_front", "Created"), ("network", "lab_back", "Created"),
        ("container", "lab-web-1", "Created"), ("container", "lab-db-1", "Created"), ("container", "lab-app-1", "Created"),
    ]
    w = {x.name: x for x in plan.wanted(p)}["lab-app-1"]
    assert [(a.network, a.aliases) for a in w.attach] == [("lab_back", ["lab-app-1", "app"]), ("lab_front", ["lab-app-1", "app"])]
    assert w.labels[naming.PROJECT] == "lab" and w.labels[naming.SERVICE] == "app" and w.labels[naming.NUMBER] == "1"


def test_an_unchanged_project_plans_nothing_but_running(tmp_path):
    p = project(tmp_path, SMALL)
    pl = plan.make(p, running(p))
    assert not pl.changes
    assert {s.action for s in pl.steps} == {"Running"}
    assert pl.steps[-1].line(dry_run=True) == " \u2714 DRY-RUN MODE -  Container lab-app-1  Running"


def test_a_changed_service_is_the_only_one_recreated(tmp_path):
    p = project(tmp_path, SMALL)
    seen = running(p)
    p2 = project(tmp_path, SMALL.replace("image: redis", "image: redis:7"))
    assert [(s.name, s.action) for s in plan.make(p2, seen).changes] == [("lab-db-1", "Recreated")]


def test_a_changed_network_is_made_again_with_the_project_s_containers_on_it(tmp_path):
    p = project(tmp_path, SMALL)
    seen = running(p)
    p2 = project(tmp_path, SMALL.replace("10.9.0.0/24", "10.8.0.0/24"))
    changes = [(s.kind, s.name, s.action) for s in plan.make(p2, seen).changes]
    assert changes == [
        ("container", "lab-db-1", "Removed"), ("container", "lab-app-1", "Removed"),
        ("network", "lab_back", "Recreated"),
        ("container", "lab-db-1", "Recreated"), ("container", "lab-app-1", "Recreated"),
    ]  # web (front only) is untouched


def test_what_the_file_no_longer_has_is_removed_and_stopped_ones_started(tmp_path):
    p = project(tmp_path, SMALL)
    seen = running(p)
    next(c for c in seen.containers if c.name == "lab-web-1").state = "exited"
    p2 = project(tmp_path, SMALL.replace("  app:\n    image: alpine\n    depends_on: [db]\n    networks: [front, back]\n", ""))
    assert [(s.kind, s.name, s.action) for s in plan.make(p2, seen).changes] == [
        ("container", "lab-app-1", "Removed"), ("container", "lab-web-1", "Started"),
    ]


def test_a_container_sharing_a_recreated_one_s_namespace_follows_it(tmp_path):
    text = "services:\n  web:\n    image: nginx\n  side:\n    image: alpine\n    network_mode: service:web\n"
    p = project(tmp_path, text)
    seen = running(p)
    assert plan.wanted(p)[1].network_mode == "container:lab-web-1"
    p2 = project(tmp_path, text.replace("image: nginx", "image: nginx:1"))
    assert [(s.name, s.action) for s in plan.make(p2, seen).changes] == [("lab-web-1", "Recreated"), ("lab-side-1", "Recreated")]


def test_x_nsbridge_changes_reconfigure_without_recreating(tmp_path):
    text = "services:\n  web:\n    image: nginx\n    x-nsbridge: {link: {default: down}}\n"
    p = project(tmp_path, text)
    seen = running(p)
    # not applied yet (an `up` whose impairments failed): applied on the next up
    assert [(s.name, s.action) for s in plan.make(p, seen).changes] == [("lab-web-1", "Configured")]
    seen.containers[0].labels[naming.XNSBRIDGE_HASH] = plan.wanted(p)[0].x_hash
    assert not plan.make(p, seen).changes
    p2 = project(tmp_path, text.replace("down", "up"))
    assert [(s.name, s.action) for s in plan.make(p2, seen).changes] == [("lab-web-1", "Configured")]


def test_an_external_network_must_exist(tmp_path):
    from nsbridge.errors import NotFound

    p = project(tmp_path, "services:\n  a:\n    image: x\n    networks: [ext]\nnetworks: {ext: {external: true, name: shared}}\n")
    with pytest.raises(NotFound, match="network shared declared as external, but could not be found"):
        plan.make(p, plan.Observed())
    ok = plan.make(p, plan.Observed(networks=[Network(id="n1", name="shared", driver="bridge", created="t")]))
    assert actions(ok) == [("container", "lab-a-1", "Created")]


# -- the schema for editors ------------------------------------------------------------------------
SCHEMA = os.path.join(os.path.dirname(naming.__file__), "schema.json")
LESSONS = os.path.join(os.path.dirname(naming.__file__), "..", "lab", "lessons")


def test_the_schema_knows_every_key_the_loader_reads():
    with open(SCHEMA) as f:
        schema = json.load(f)
    svc = set(schema["definitions"]["service"]["properties"])
    assert parse.SERVICE_KEYS | {"x-nsbridge"} <= svc
    assert {k for k in parse.NOT_HONOURED if k != "include"} <= svc
    assert parse.NETWORK_KEYS == set(schema["definitions"]["network"]["properties"])
    assert parse.TOP_KEYS <= set(schema["properties"])


def test_every_lesson_and_the_wild_file_validate_against_the_schema_and_typos_do_not():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency (setup.sh test installs it)")
    with open(SCHEMA) as f:
        schema = json.load(f)
    files = [os.path.join(LESSONS, d, "compose.yaml") for d in sorted(os.listdir(LESSONS))
             if os.path.isdir(os.path.join(LESSONS, d))]
    assert len(files) >= 10
    for path in files:
        with open(path) as f:
            jsonschema.validate(parse_yaml(f.read(), path), schema)
    jsonschema.validate(parse_yaml(WILD.replace("    frobnicate: 3\n", ""), "wild"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"web": {"image": "x", "portz": ["80"]}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"web": {"image": "x", "x-nsbridge": {"impair": {"lan": {"dealy": "5ms"}}}}}}, schema)
