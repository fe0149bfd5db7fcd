"""Unit tests for nsbridge.render.gotemplate (Go text/template + docker funcs)."""

from __future__ import annotations

import pytest

from nsbridge.render.gotemplate import (
    Template,
    TemplateError,
    compile_template,
    docker_preprocess,
    is_table,
    render,
    strip_table,
)

CONTAINER = {
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 1234},
    "NetworkSettings": {
        "Networks": {
            "skynet": {"IPAddress": "172.19.0.3", "Gateway": "172.19.0.1", "IPAMConfig": None},
            "bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1", "IPAMConfig": None},
        }
    },
    "Args": ["-g", "daemon off;"],
}

NETWORK = {
    "Name": "mynet",
    "Internal": False,
    "Options": {"com.docker.network.bridge.name": "br-mynet"},
    "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
    "Containers": {
        "b2c": {"Name": "beta", "IPv4Address": "172.18.0.3/16"},
        "a1b": {"Name": "alpha", "IPv4Address": "172.18.0.2/16"},
    },
    "Labels": {"course": "networking"},
}


# ---- the tutorial templates -------------------------------------------------

@pytest.mark.parametrize("tmpl,data,want", [
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
     {"NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}}, "172.17.0.2"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", CONTAINER, "172.17.0.2172.19.0.3"),
    ("{{range .NetworkSettings.Networks}} {{.IPAddress}} {{end}}", CONTAINER, " 172.17.0.2  172.19.0.3 "),
    # map ranges go in sorted key order: a1b (alpha) before b2c (beta)
    ("{{range .Containers}}{{.Name}}{{end}}", NETWORK, "alphabeta"),
    ("{{range .Containers}} {{.Name}} {{end}}", NETWORK, " alpha  beta "),
    ("{{(index .NetworkSettings.Networks \"skynet\").IPAddress}}", CONTAINER, "172.19.0.3"),
    ("{{.State.Status}} {{(index .NetworkSettings.Networks \"skynet\").IPAddress}}", CONTAINER,
     "running 172.19.0.3"),
    ("{{json .IPAM.Config}}", NETWORK, '[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]'),
    ("{{range .NetworkSettings.Networks}}{{split .IPAddress \",\"}}{{end}}", CONTAINER,
     "[172.17.0.2][172.19.0.3]"),
    ("{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}", NETWORK,
     "alpha=172.18.0.2/16 beta=172.18.0.3/16 "),
    ('{{index .Options "com.docker.network.bridge.name"}}', NETWORK, "br-mynet"),
    ('{{join .Args " "}}', CONTAINER, "-g daemon off;"),
    ("{{upper .Name}}", NETWORK, "MYNET"),
    ("{{println .Name}}", NETWORK, "mynet\n"),
    ("{{if .Internal}}yes{{else}}no{{end}}", NETWORK, "no"),
    ("{{if .Internal}}yes{{else}}no{{end}}", {"Internal": True}, "yes"),
    ("{{with .Labels}}{{.course}}{{end}}", NETWORK, "networking"),
    ("{{with .Labels}}{{.course}}{{end}}", {"Labels": {}}, ""),
])
def test_tutorial_templates(tmpl: str, data: object, want: str) -> None:
    assert render(tmpl, data) == want


def test_json_of_networks_keeps_insertion_order_and_null() -> None:
    assert render("{{json .NetworkSettings.Networks}}", CONTAINER) == (
        '{"skynet":{"IPAddress":"172.19.0.3","Gateway":"172.19.0.1","IPAMConfig":null},'
        '"bridge":{"IPAddress":"172.17.0.2","Gateway":"172.17.0.1","IPAMConfig":null}}')


# ---- text, trim markers, comments -------------------------------------------

def test_plain_text_and_dot() -> None:
    assert render("hello", None) == "hello"
    assert render("{{.}}", "x") == "x"
    assert render("", {}) == ""


def test_trim_markers() -> None:
    assert render("a  \n {{- .X -}} \n  b", {"X": 1}) == "a1b"
    assert render("a {{- .X}} b", {"X": 1}) == "a1 b"
    assert render("a {{.X -}} b", {"X": 1}) == "a 1b"
    # "{{-3}}" is the number -3, not a trim marker
    assert render("a {{-3}}", {}) == "a -3"


def test_comments() -> None:
    assert render("a{{/* hi */}}b", {}) == "ab"
    assert render("a {{- /* multi\nline */ -}} b", {}) == "ab"
    with pytest.raises(TemplateError, match="unclosed comment"):
        render("{{/* x", {})
    with pytest.raises(TemplateError, match="comment ends before closing delimiter"):
        render("{{/* x */ .A}}", {})


# ---- fields, variables, missing values ---------------------------------------

def test_field_chains_and_root() -> None:
    assert render("{{.State.Pid}}", CONTAINER) == "1234"
    assert render("{{with .State}}{{$.Name}}:{{.Status}}{{end}}", CONTAINER) == "/web:running"


def test_missing_keys_and_nil() -> None:
    assert render("{{.Nope}}", {}) == "<no value>"
    assert render("{{.Nope.Deeper}}", {}) == "<no value>"
    assert render("{{.A}}", {"A": None}) == "<nil>"
    assert render("{{.A.B}}", {"A": None}) == "<no value>"
    assert render('{{index . "nope"}}', {}) == "<no value>"
    assert render("{{if .Nope}}y{{else}}n{{end}}", {}) == "n"


def test_missingkey_error_option() -> None:
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render("{{.Nope}}", {}, missingkey="error")
    with pytest.raises(TemplateError, match="nil pointer evaluating"):
        compile_template("{{.A.B}}", missingkey="error").execute({"A": None})
    with pytest.raises(ValueError):
        compile_template("x", missingkey="bogus")


def test_field_on_non_map_is_error() -> None:
    with pytest.raises(TemplateError) as e:
        render("{{.Name.Len}}", {"Name": "x"})
    assert str(e.value) == ('template: :1:2: executing "" at <.Name.Len>: '
                            "can't evaluate field Len in type string")


def test_variables() -> None:
    assert render("{{$x := .Name}}{{$x}}-{{$x}}", NETWORK) == "mynet-mynet"
    assert render("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", {}) == "2"
    assert render("{{$n := 0}}{{range .}}{{$n = .}}{{end}}{{$n}}", [1, 2, 3]) == "3"
    assert render("{{range $i, $v := .}}{{$i}}:{{$v}} {{end}}", ["a", "b"]) == "0:a 1:b "
    assert render("{{range $v := .}}{{$v}}{{end}}", ["a", "b"]) == "ab"
    assert render("{{range $k, $v := .}}{{$k}}={{$v}};{{end}}", {"b": 2, "a": 1}) == "a=1;b=2;"
    assert render("{{$x := .}}{{$x.A.B}}", {"A": {"B": "deep"}}) == "deep"
    assert render("{{if $x := .A}}{{$x}}{{else}}none{{end}}", {"A": "v"}) == "v"
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        render("{{$y}}", {})
    with pytest.raises(TemplateError, match='undefined variable "\\$x"'):
        render("{{if true}}{{$x := 1}}{{end}}{{$x}}", {})  # scope ends at {{end}}


# ---- pipelines, parens, literals ----------------------------------------------

def test_pipelines_and_parens() -> None:
    assert render("{{.Name | upper}}", NETWORK) == "MYNET"
    assert render('{{.Name | printf "%s!" | upper}}', NETWORK) == "MYNET!"
    assert render("{{(index .IPAM.Config 0).Subnet}}", NETWORK) == "172.18.0.0/16"
    assert render('{{len (split "a,b,c" ",")}}', {}) == "3"
    assert render("{{print (.Name) (len .Name)}}", NETWORK) == "mynet5"


def test_literals() -> None:
    assert render(r'{{"a\tb\n\"c\" \u00e9 \x41"}}', {}) == 'a\tb\n"c" é A'
    assert render("{{`raw \\n {{x}}`}}", {}) == "raw \\n {{x}}"
    assert render('{{"}}"}}', {}) == "}}"
    assert render("{{42}} {{-7}} {{0x1f}} {{1.5}} {{1e3}} {{'a'}}", {}) == "42 -7 31 1.5 1000 97"
    assert render("{{true}} {{false}}", {}) == "true false"
    assert render("{{print nil}}", {}) == "<nil>"


# ---- control structures ---------------------------------------------------------

def test_if_else_if_chain() -> None:
    t = compile_template("{{if eq .N 1}}one{{else if eq .N 2}}two{{else}}many{{end}}")
    assert [t.execute({"N": n}) for n in (1, 2, 3)] == ["one", "two", "many"]


def test_with_else() -> None:
    assert render("{{with .A}}[{{.}}]{{else}}empty{{end}}", {"A": ""}) == "empty"
    assert render("{{with .A}}[{{.}}]{{else with .B}}b={{.}}{{end}}", {"A": 0, "B": 5}) == "b=5"


def test_range_else_and_empty() -> None:
    for data in ({"L": []}, {"L": {}}, {"L": None}, {}):
        assert render("{{range .L}}x{{else}}empty{{end}}", data) == "empty"
    assert render("{{range .L}}x{{end}}", {"L": []}) == ""
    assert render("{{range 3}}{{.}}{{end}}", {}) == "012"
    with pytest.raises(TemplateError, match="range can't iterate over abc"):
        render("{{range .}}{{end}}", "abc")


def test_break_continue() -> None:
    t = "{{range .}}{{if eq . 3}}{{break}}{{end}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}"
    assert render(t, [0, 1, 2, 3, 4]) == "02"
    with pytest.raises(TemplateError, match="outside"):
        render("{{break}}", {})


def test_truthiness() -> None:
    t = compile_template("{{if .}}T{{else}}F{{end}}")
    falsy = [False, 0, 0.0, "", None, [], {}]
    truthy = [True, 1, -1, 0.5, "x", [0], {"a": 0}]
    assert [t.execute(v) for v in falsy] == ["F"] * len(falsy)
    assert [t.execute(v) for v in truthy] == ["T"] * len(truthy)


# ---- value printing (Go %v) ------------------------------------------------------

@pytest.mark.parametrize("value,want", [
    ("s", "s"), (3, "3"), (-3, "-3"), (1.0, "1"), (1.5, "1.5"), (0.1, "0.1"), (100000.0, "100000"),
    (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (float("inf"), "+Inf"), (True, "true"), (False, "false"), (None, "<nil>"),
    (["a", "b", "c"], "[a b c]"), ([], "[]"), ([1, [2, 3], None], "[1 [2 3] <nil>]"),
    ({"b": 2, "a": 1}, "map[a:1 b:2]"), ({"x": ["y"], "m": {"k": True}}, "map[m:map[k:true] x:[y]]"),
])
def test_value_printing(value: object, want: str) -> None:
    assert render("{{.}}", value) == want


# ---- builtin functions --------------------------------------------------------------

def test_and_or_not() -> None:
    assert render('{{and 1 "x"}} {{and 0 "x"}} {{or "" "y"}} {{or 0 ""}}', {}) == "x 0 y "
    assert render("{{not 0}} {{not 1}}", {}) == "true false"
    # short-circuit: the failing index is never evaluated
    assert render("{{and false (index .L 9)}}", {"L": []}) == "false"
    assert render("{{or .A .B}}", {"B": "b"}) == "b"


def test_len_index_slice() -> None:
    assert render("{{len .}}", [1, 2]) == "2"
    assert render("{{len .}}", {"a": 1}) == "1"
    assert render('{{len "héllo"}}', {}) == "6"  # Go counts bytes
    assert render('{{index . 1 "k"}}', [0, {"k": "v"}]) == "v"
    assert render('{{slice "abcdef" 1 3}} {{slice . 1}}', [1, 2, 3]) == "bc [2 3]"
    with pytest.raises(TemplateError, match="error calling index: index out of range: 5"):
        render("{{index . 5}}", [1])
    with pytest.raises(TemplateError, match="len of type int"):
        render("{{len 3}}", {})


def test_comparisons() -> None:
    assert render("{{eq 1 1}} {{eq 1 2}} {{eq 2 1 2}} {{ne 1 2}}", {}) == "true false true true"
    assert render('{{eq .S "a"}} {{eq .Nope "a"}}', {"S": "a"}) == "true false"
    assert render("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 2 2}} {{lt 1.5 2}}", {}) == "true true false true true"
    assert render('{{lt "a" "b"}}', {}) == "true"
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{eq 1 "1"}}', {})
    with pytest.raises(TemplateError, match="invalid type for comparison"):
        render("{{lt true false}}", {})


def test_print_family() -> None:
    assert render('{{print "a" "b" 1 2 "c"}}', {}) == "ab1 2c"
    assert render('{{println "a" 1}}', {}) == "a 1\n"
    assert render('{{printf "%s=%d" "n" 5}}', {}) == "n=5"
    assert render('{{printf "%v %t %q" .L true "x\\ny"}}', {"L": [1, "a"]}) == '[1 a] true "x\\ny"'
    assert render('{{printf "%x %X %x" 255 255 "hi"}}', {}) == "ff FF 6869"
    assert render('{{printf "[%5s][%-5s][%05d][%.2f][%6.1f]" "ab" "ab" 42 3.14159 2.25}}', {}) == (
        "[   ab][ab   ][00042][3.14][   2.2]")
    assert render('{{printf "%d%%" 50}}', {}) == "50%"
    assert render('{{printf "%d" "x"}}', {}) == "%!d(string=x)"
    assert render('{{printf "%d %d" 1}}', {}) == "1 %!d(MISSING)"
    assert render('{{printf "%d" 1 2}}', {}) == "1%!(EXTRA int=2)"
    assert render('{{printf "%v" 2.5}} {{printf "%s" .L}}', {"L": ["a", "b"]}) == "2.5 [a b]"
    assert render('{{printf "%T %T %T" 1 .L nil}}', {"L": []}) == "int []interface {} <nil>"


# ---- docker's functions ---------------------------------------------------------------

def test_docker_json() -> None:
    assert render("{{json .}}", {"b": 1, "a": [True, None, 1.5, 2.0]}) == '{"b":1,"a":[true,null,1.5,2]}'
    # docker's json func disables HTML escaping (enc.SetEscapeHTML(false))
    assert render("{{json .}}", "<a&b>") == '"<a&b>"'
    assert render("{{json .}}", 'q"\\\n\t\x01\u2028é') == '"q\\"\\\\\\n\\t\\u0001\\u2028é"'
    assert render("{{json .}}", 1e21) == "1e+21"
    assert render("{{json .}}", 1e-7) == "1e-7"
    assert render("{{json .}}", 1e20) == "100000000000000000000"
    assert render("{{json .Nope}}", {}) == "null"
    assert render("{{json .}}", []) == "[]"
    assert render("{{json .}}", {}) == "{}"


def test_docker_string_funcs() -> None:
    assert render('{{join . ", "}}', ["a", "b"]) == "a, b"
    assert render('{{split "a,b" ","}} {{len (split "" ",")}}', {}) == "[a b] 1"
    assert render('{{lower "AbC"}} {{upper "AbC"}}', {}) == "abc ABC"
    assert render('{{title "hello wide-world foo_bar"}}', {}) == "Hello Wide-World Foo_bar"
    assert render('{{truncate "abcdef" 3}} {{truncate "ab" 3}}', {}) == "abc ab"
    assert render('[{{pad "ab" 1 2}}][{{pad "" 1 2}}]', {}) == "[ ab  ][]"
    with pytest.raises(TemplateError, match="wrong type for value; expected string; got int"):
        render("{{upper 3}}", {})
    with pytest.raises(TemplateError, match="wrong number of args for join: want 2 got 1"):
        render("{{join .}}", ["a"])


def test_header_funcs_leave_titles_alone() -> None:
    t = compile_template("{{upper .Name}}\t{{truncate .ID 3}}\t{{pad .Driver 1 1}}")
    assert t.execute_header({"Name": "NAME", "ID": "NETWORK ID", "Driver": "DRIVER"}) == "NAME\tNETWORK ID\t DRIVER "


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("tmpl,msg", [
    ("{{foo .}}", 'template: :1: function "foo" not defined'),
    ("{{.Name", "template: :1: unclosed action"),
    ("{{if .A}}x", "template: :1: unexpected EOF"),
    ("x{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{if}}{{end}}", "template: :1: missing value for if"),
    ("a\n{{(.A}}", "template: :2: unclosed left paren"),
    ("{{.A)}}", "template: :1: unexpected right paren"),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{.A | 1}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{template \"x\"}}", "template: :1: {{template}} is not supported"),
    ("{{.A!}}", "template: :1: bad character U+0021 '!'"),
    ("{{1a}}", 'template: :1: bad number syntax: "1a"'),
    ("{{$x, $y := .}}", "template: :1: too many declarations in command"),
    ("{{range .}}{{else if .}}{{end}}", "template: :1: unexpected <if> in else"),
])
def test_parse_errors(tmpl: str, msg: str) -> None:
    with pytest.raises(TemplateError) as e:
        compile_template(tmpl)
    assert str(e.value) == msg
    assert "\n" not in str(e.value)


def test_exec_errors_are_one_line_and_go_worded() -> None:
    with pytest.raises(TemplateError) as e:
        render('x\n {{index .L 3}}', {"L": []})
    assert str(e.value) == 'template: :2:3: executing "" at <index .L 3>: error calling index: index out of range: 3'
    with pytest.raises(TemplateError) as e:
        render("{{index\n  .L 3}}", {"L": []})
    assert "\n" not in str(e.value) and "<index .L 3>" in str(e.value)
    with pytest.raises(TemplateError, match="can't give argument to non-function"):
        render("{{.A | .B}}", {"A": 1, "B": 2})
    assert issubclass(TemplateError, ValueError)


# ---- what a template may cost ------------------------------------------------------------

def test_printf_width_and_precision_stop_where_gos_fmt_does() -> None:
    """`{{printf "%0999999999d" 1}}` ran 90 s, took 11.7 GB and printed 2 GB. Go's fmt
    gives up on a width or precision past ~1e6 ("crazy long number"): the verb and the
    rest of the format become %!(NOVERB), the unused arguments %!(EXTRA ...)."""
    assert render('{{printf "%.99999999f" 1.5}}', {}) == "%!(NOVERB)%!(EXTRA float64=1.5)"
    assert render('{{printf "a%0999999999d b" 1}}', {}) == "a%!(NOVERB)%!(EXTRA int=1)"
    assert render('{{printf "%s %99999999s %s" "x" "y" "z"}}', {}) == "x %!(NOVERB)%!(EXTRA string=y, string=z)"
    assert render('{{printf "%05d|%.3s|%-4d|" 42 "abcdef" 7}}', {}) == "00042|abc|7   |"
    assert len(render('{{printf "%9999999d" 1}}', {})) == 9999999  # what Go still takes (~10 MB)


@pytest.mark.parametrize("tmpl", [
    "{{if 1}}" * 1000 + "x" + "{{end}}" * 1000,
    "{{print " + "(print " * 1000 + "1" + ")" * 1000 + "}}",
    "{{if 0}}{{else if 0}}" + "{{else if 0}}" * 1000 + "{{end}}",
    "{{range .}}" * 101 + "{{end}}" * 101,
])
def test_nesting_past_the_bound_is_refused_in_one_line(tmpl: str) -> None:
    """Deep nesting ended in `internal error: RecursionError`; Go bounds parentheses
    at 10000 with this text, and nsbridge all nesting (its stack does not grow) at 100."""
    with pytest.raises(TemplateError) as e:
        compile_template(tmpl)
    assert str(e.value) == "template: :1: max expression depth exceeded"


def test_nesting_up_to_the_bound_works() -> None:
    assert render("{{if 1}}" * 100 + "x" + "{{end}}" * 100, {}) == "x"
    assert render("{{print " + "(print " * 99 + "1" + ")" * 99 + "}}", {}) == "1"
    assert render("{{range .}}" * 3 + "{{.}}" + "{{end}}" * 3, [[[7]]]) == "7"


@pytest.mark.parametrize("tmpl,msg", [
    ('{{pad "x" 999999999 0}}',
     'template: :1:2: executing "" at <pad "x" 999999999 0>: exceeded maximum template output (16 MiB)'),
    ('{{range 3}}{{printf "%9999999d" 1}}{{end}}', "template: : exceeded maximum template output (16 MiB)"),
    ('{{$x := "ab"}}{{range 60}}{{$x = print $x $x}}{{end}}',
     'template: :1:33: executing "" at <print $x $x>: exceeded maximum template output (16 MiB)'),
    ('{{join (split (printf "%9999999d" 1) "") "xx"}}',
     'template: :1:8: executing "" at <split (printf "%9999...>: exceeded maximum template items (1048576)'),
    ("{{range 1000000000}}{{end}}", "template: : exceeded maximum template steps (1000000)"),
    ('{{range 20000}}{{$x := printf "%99999d" 1}}{{end}}', "template: : exceeded maximum template steps (1000000)"),
])
def test_output_size_and_work_are_bounded(tmpl: str, msg: str) -> None:
    """A template may not make more than 16 MiB of text, nor take more than a
    million steps (a text made costs one per 256 bytes): one line, at once."""
    with pytest.raises(TemplateError) as e:
        render(tmpl, {})
    assert str(e.value) == msg


# ---- compile once, run many; docker formatter helpers ------------------------------------

def test_compile_once_execute_many() -> None:
    t = compile_template("{{.Name}}\t{{.Driver}}")
    assert isinstance(t, Template)
    rows = [{"Name": "a", "Driver": "bridge"}, {"Name": "b", "Driver": "host"}]
    assert [t.execute(r) for r in rows] == ["a\tbridge", "b\thost"]


def test_table_helpers_and_preprocess() -> None:
    assert is_table("table {{.Name}}\t{{.ID}}")
    assert not is_table("{{.Name}}")
    assert strip_table("table {{.Name}}") == " {{.Name}}"
    assert strip_table("{{.Name}}") == "{{.Name}}"
    # docker's preFormat: strip prefix, trim spaces, turn literal \t and \n into tab/newline
    assert docker_preprocess("table {{.Name}}\\t{{.ID}}") == "{{.Name}}\t{{.ID}}"
    assert docker_preprocess("{{.Name}}\\n ") == "{{.Name}}\n"
    assert docker_preprocess("json") == "{{json .}}"
    assert docker_preprocess("  {{.A}}\t{{.B}}  ") == "{{.A}}\t{{.B}}"
