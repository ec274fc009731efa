"""The documentation in the repository, checked against the binary it describes.

- Every configuration key that `gateway.conf.example` (commented-out lines included), the
  README or `docs/` names is a key `check-config` accepts in that section.
- `docs/configuration.md` documents every key `check-config` accepts, in its section, and
  every default it states is the one `check-config` renders.
- Every `--flag` written after a `dbaudit-gateway` (sub)command in the README, `docs/`, the
  example configuration or the systemd files is in that subcommand's `--help`.
- No file cites design notes that live outside this repository.

What the binary accepts is asked of the binary, never listed here: `check-config` names
the keys a table accepts when it meets one it does not know ("unknown key (known here:
...)"), so a probe key in every section yields the whole schema, sections included.
"""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

import requests

from conftest import ROOT, gateway_binary
from test_admin import admin_port
from test_tls import PKI, openssl

DOCS = ROOT / "docs"
EXAMPLE = ROOT / "gateway.conf.example"
README = ROOT / "README.md"
CONFIGURATION_DOC = DOCS / "configuration.md"

PROBE = "zz_docs_probe"
KNOWN_HERE = re.compile(r": (\S*?)\.?" + PROBE + r": unknown key \(known here: ([^)]*)\)")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


# --- what the binary knows ----------------------------------------------------------------

def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([gateway_binary(), "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)


def _section_header(path: str, kind: str) -> str:
    return f"[[{path}]]" if kind == "array" else f"[{path}]"


def _probe(tmp: Path, sections: dict, extra: list) -> dict:
    """Runs check-config on a file with the probe key in every section of `sections`
    (path -> "table" | "array") and of `extra` ((path, kind) pairs); returns the
    "known here" lists it reports, by section path (array indexes dropped)."""
    lines = [f"{PROBE} = 1"]
    for path, kind in sorted(list(sections.items()) + extra):
        if path:
            lines += ["", _section_header(path, kind), f"{PROBE} = 1"]
    config = tmp / "probe.conf"
    config.write_text("\n".join(lines) + "\n")
    output = check_config(config)
    assert output.returncode == 1, f"a probe key was accepted:\n{output.stdout}{output.stderr}"
    found = {}
    for match in KNOWN_HERE.finditer(output.stdout + output.stderr):
        path = re.sub(r"\[\d+\]", "", match[1])
        found[path] = {name.strip() for name in match[2].split(",") if name.strip()}
    return found


class Schema:
    """The sections and keys check-config accepts: `kinds` maps a section path ("" is the
    root, "auth.jwt", "routes", ...) to "table" or "array" (of tables); `keys` maps it to
    the keys it accepts (its subsections excluded)."""

    def __init__(self, tmp: Path):
        self.kinds = {"": "table"}
        names = _probe(tmp, {}, [])
        assert "" in names, "check-config no longer lists the keys it knows next to an unknown one"
        known = {"": names[""]}
        classified = set()
        while True:
            candidates = [(f"{parent}.{name}" if parent else name)
                          for parent, children in known.items() for name in children]
            candidates = [path for path in candidates if path not in classified]
            if not candidates:
                break
            for kind in ("table", "array"):
                trying = [path for path in candidates if path not in classified]
                answers = _probe(tmp, self.kinds, [(path, kind) for path in trying])
                for path in trying:
                    if path in answers:
                        self.kinds[path] = kind
                        known[path] = answers[path]
                        classified.add(path)
            classified.update(candidates)  # the rest are keys
        self.keys = {}
        for path in self.kinds:
            children = known.get(path, set())
            self.keys[path] = {name for name in children
                               if (f"{path}.{name}" if path else name) not in self.kinds}

    def all_keys(self) -> set:
        return set().union(*self.keys.values())

    def header(self, path: str) -> str:
        return _section_header(path, self.kinds[path])


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Schema:
    return Schema(tmp_path_factory.mktemp("schema"))


def toml_keys(document: dict, path: str = ""):
    """(section, key) for every key of a parsed TOML document; arrays of tables are
    walked element by element."""
    for name, value in document.items():
        child = f"{path}.{name}" if path else name
        if isinstance(value, dict):
            yield from toml_keys(value, child)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for element in value:
                yield from toml_keys(element, child)
        else:
            yield path, name


def sections_of(document: dict, path: str = "", into: dict | None = None) -> dict:
    """{section: {key: value}} of a parsed TOML document (the first element of an array
    of tables stands for all)."""
    into = {} if into is None else into
    into.setdefault(path, {})
    for name, value in document.items():
        child = f"{path}.{name}" if path else name
        if isinstance(value, dict):
            sections_of(value, child, into)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for element in value:
                sections_of(element, child, into)
        else:
            into[path].setdefault(name, value)
    return into


@pytest.fixture(scope="module")
def rendered_defaults(tmp_path_factory) -> dict:
    """check-config's rendering of a file that turns on every section and sets only what
    each requires: everything else it prints is a default."""
    tmp = tmp_path_factory.mktemp("render")
    pki = PKI(tmp)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "jwt.pem", cwd=tmp)
    (tmp / "pepper").write_text("p" * 40 + "\n")
    config = tmp / "defaults.conf"
    config.write_text(f"""
[server.tls]
certificate_file = "{pki.path('server.pem')}"
private_key_file = "{pki.path('server.key')}"

[[server.tls.certificates]]
server_names = ["api.example.test"]
certificate_file = "{pki.path('sni.pem')}"
private_key_file = "{pki.path('sni.key')}"

[upstream]
url = "https://127.0.0.1:9000"

[redis]
url = "redis://127.0.0.1:6379"

[admin]

[cache]

[logging]

[auth.api_keys]
pepper_file = "{tmp / 'pepper'}"

[auth.jwt]
issuer = "https://gateway.example.test"

[[auth.jwt.signing_keys]]
kid = "k1"
private_key_file = "{tmp / 'jwt.pem'}"
active = true

[[auth.jwt.issuers]]
issuer = "https://idp.example.test"
jwks_url = "https://idp.example.test/jwks.json"

[oauth]

[sso]

[[sso.providers]]
name = "corp"
issuer = "https://sso.example.test"
client_id = "gateway"
client_secret_file = "{tmp / 'pepper'}"

[[auth.oauth.introspection]]
endpoint = "https://idp.example.test/oauth2/introspect"
client_id = "gateway"
client_secret_file = "{tmp / 'pepper'}"

[[rate_limits]]
name = "p"
rate = 5
per = "second"

[[routes]]
path = "/x"
public = true
""")
    output = check_config(config)
    assert output.returncode == 0, output.stdout + output.stderr
    rendered = sections_of(tomllib.loads(output.stdout))
    explicit = sections_of(tomllib.loads(config.read_text()))
    return {"rendered": rendered, "explicit": explicit}


# --- what the documents say -----------------------------------------------------------------

HEADER_LINE = re.compile(r"^\s*(?:#\s*)*(\[\[?)\s*([A-Za-z0-9_.]+)\s*\]\]?\s*$")
KEY_LINE = re.compile(r"^\s*(?:#\s*)*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.+)$")


def example_keys(text: str):
    """(section, key, line) for every key line of a TOML file with commented-out parts.

    Comment markers are stripped, then a line is a key line only if it parses as a TOML
    key/value on its own: `# pepper_file = "/etc/..."` is one, prose that merely contains
    an equals sign is not. A (possibly commented) `[section]` or `[[section]]` line
    changes the section."""
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = HEADER_LINE.match(line)
        if header:
            section = header[2]
            continue
        pair = KEY_LINE.match(line)
        if not pair:
            continue
        try:
            tomllib.loads(f"{pair[1]} = {pair[2]}")
        except tomllib.TOMLDecodeError:
            continue
        yield section, pair[1], number


FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`]+)`")
SECTION_SPAN = re.compile(r"^\[\[?([a-z0-9_.]+)\]\]?$")
SECTION_KEY_SPAN = re.compile(r"^\[\[?([a-z0-9_.]+)\]\]?\s+([a-z][a-z0-9_]*)$")
ASSIGNMENT_SPAN = re.compile(r"^([a-z][a-z0-9_]*) = \S")  # TOML style; `error="x"` in a header is not one


def fenced_blocks(text: str):
    """(language, body, first line number) of every fenced code block."""
    for match in FENCE.finditer(text):
        yield match[1].lower(), match[2], text.count("\n", 0, match.start(2)) + 1


def without_fences(text: str) -> str:
    """`text` with fenced blocks blanked (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m[0].count("\n"), text)


def code_spans(text: str):
    """(content, line number) of every inline code span outside fenced blocks."""
    prose = without_fences(text)
    for match in CODE_SPAN.finditer(prose):
        yield match[1], prose.count("\n", 0, match.start()) + 1


def table_cells(line: str) -> list:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def reference_rows(path: Path):
    """(section, key, cells, line) for each row of a table under a heading that names a
    section (`## [server]`) whose first cell is one key in a code span."""
    section = None
    for number, line in enumerate(without_fences(path.read_text()).splitlines(), 1):
        if line.startswith("#"):
            spans = [s for s in CODE_SPAN.findall(line) if SECTION_SPAN.match(s)]
            section = SECTION_SPAN.match(spans[0])[1] if spans else None
        elif section and line.startswith("|"):
            cells = table_cells(line)
            first = CODE_SPAN.findall(cells[0])
            if len(first) == 1 and IDENTIFIER.match(first[0]) and cells[0] == f"`{first[0]}`":
                yield section, first[0], cells, number


def markdown_config_mentions(path: Path):
    """Configuration keys a Markdown file names, as (section or None, key, where).

    - ```toml blocks: every key, in its TOML section;
    - table rows whose first cell is a section (`[server]`): the identifiers in code spans
      of the other cells, `[[sub.section]]` spans switching the section (the README's
      configuration table);
    - in docs/configuration.md, rows of a table under a heading naming a section;
    - inline `[section] key` spans; inline `key = value` spans (section unknown: the key
      must exist in some section)."""
    text = path.read_text()
    name = path.relative_to(ROOT)
    for language, body, line in fenced_blocks(text):
        if language == "toml":
            for section, key in toml_keys(tomllib.loads(body)):
                yield section, key, f"{name}:{line} (toml block)"
    for number, line in enumerate(without_fences(text).splitlines(), 1):
        if not line.startswith("|"):
            continue
        cells = table_cells(line)
        first = CODE_SPAN.findall(cells[0])
        if len(first) == 1 and SECTION_SPAN.match(first[0]) and len(cells) > 1:
            section = SECTION_SPAN.match(first[0])[1]
            for span in CODE_SPAN.findall("|".join(cells[1:])):
                if SECTION_SPAN.match(span):
                    section = SECTION_SPAN.match(span)[1]
                elif IDENTIFIER.match(span):
                    yield section, span, f"{name}:{number} (table of [{section}])"
    if path == CONFIGURATION_DOC:
        for section, key, _, number in reference_rows(path):
            yield section, key, f"{name}:{number} (table under [{section}])"
    for span, number in code_spans(text):
        span = " ".join(span.split())
        if m := SECTION_KEY_SPAN.match(span):
            yield m[1], m[2], f"{name}:{number} (`{span}`)"
        elif m := ASSIGNMENT_SPAN.match(span):
            yield None, m[1], f"{name}:{number} (`{span}`)"


def documents() -> list:
    return [README] + sorted(DOCS.glob("*.md"))


def test_docs_directory_exists_and_the_readme_points_to_it():
    for name in ["README.md", "credentials.md", "endpoints.md", "errors.md", "headers.md", "redis.md",
                 "configuration.md", "operations.md"]:
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"
    assert "docs/README.md" in README.read_text() or "(docs/)" in README.read_text()


def test_every_key_in_the_example_is_known_to_check_config(schema):
    mentions = list(example_keys(EXAMPLE.read_text()))
    assert len(mentions) > 50, "the example's key lines were not recognised"
    unknown = [f"gateway.conf.example:{line}: {schema.header(section) if section in schema.kinds else '[' + section + ']'} {key}"
               for section, key, line in mentions
               if section not in schema.kinds or key not in schema.keys[section]]
    assert not unknown, "keys check-config does not accept:\n" + "\n".join(unknown)


def test_every_key_the_readme_and_docs_name_is_known_to_check_config(schema):
    mentions = [m for path in documents() for m in markdown_config_mentions(path)]
    assert any(where.startswith("README.md") for _, _, where in mentions), "no key found in README.md"
    everywhere = schema.all_keys()
    unknown = []
    for section, key, where in mentions:
        if section is None:
            if key not in everywhere:
                unknown.append(f"{where}: {key} is no key of any section")
        elif section not in schema.kinds:
            unknown.append(f"{where}: [{section}] is no section")
        elif key not in schema.keys[section]:
            unknown.append(f"{where}: {schema.header(section)} has no key {key}")
    assert not unknown, "keys check-config does not accept:\n" + "\n".join(unknown)


# --- docs/configuration.md against check-config ---------------------------------------------

def configuration_reference() -> dict:
    """{section: {key: default cell}} from docs/configuration.md's tables (key, type,
    default, meaning)."""
    reference = {}
    for section, key, cells, _ in reference_rows(CONFIGURATION_DOC):
        reference.setdefault(section, {})[key] = cells[2] if len(cells) > 2 else ""
    return reference


def test_configuration_reference_documents_every_key_check_config_accepts(schema):
    reference = configuration_reference()
    missing = [f"{schema.header(section)} {key}"
               for section, keys in sorted(schema.keys.items()) for key in sorted(keys)
               if key not in reference.get(section, {})]
    assert not missing, "docs/configuration.md does not document:\n" + "\n".join(missing)
    extra = [f"[{section}] {key}" for section, keys in reference.items() for key in keys
             if section not in schema.keys or key not in schema.keys[section]]
    assert not extra, "docs/configuration.md documents keys check-config refuses:\n" + "\n".join(extra)


def test_configuration_reference_documents_every_key_check_config_renders(rendered_defaults):
    reference = configuration_reference()
    missing = [f"[{section}] {key}" for section, keys in rendered_defaults["rendered"].items()
               for key in keys if key not in reference.get(section, {})]
    assert not missing, "check-config renders keys docs/configuration.md does not document:\n" + "\n".join(missing)


DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
SIZE = re.compile(r"^(\d+)(B|KiB|MiB|GiB)$")


def normalised(value):
    """Durations in milliseconds and sizes in bytes, so "60s" equals "1m" and "32KiB"
    equals 32768."""
    if isinstance(value, str):
        if m := DURATION.match(value):
            return ("duration", int(m[1]) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m[2]])
        if m := SIZE.match(value):
            return ("size", int(m[1]) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]])
    if isinstance(value, int) and not isinstance(value, bool):
        return ("size", value) if value >= 1024 else value
    return value


def test_configuration_reference_defaults_are_what_check_config_renders(rendered_defaults):
    reference = configuration_reference()
    rendered, explicit = rendered_defaults["rendered"], rendered_defaults["explicit"]
    wrong, compared = [], 0
    for section, keys in reference.items():
        for key, cell in keys.items():
            spans = CODE_SPAN.findall(cell)
            if not cell.startswith("`") or not spans:
                continue  # "required", "none", "= rate": not a literal default
            if key not in rendered.get(section, {}) or key in explicit.get(section, {}):
                continue  # not printed without a value, or set by the file above
            documented = tomllib.loads(f"v = {spans[0]}")["v"]
            actual = rendered[section][key]
            compared += 1
            if normalised(documented) != normalised(actual):
                wrong.append(f"[{section}] {key}: documented {spans[0]}, check-config renders {actual!r}")
    assert compared >= 50, f"only {compared} documented defaults could be compared"
    assert not wrong, "docs/configuration.md states defaults check-config does not have:\n" + "\n".join(wrong)


# --- CLI flags ------------------------------------------------------------------------------

class Help:
    """The command tree as `--help` prints it: subcommands and options of each command."""

    def __init__(self):
        self.options = {}
        self.subcommands = {}
        self._read(())

    def _read(self, command: tuple):
        result = subprocess.run([gateway_binary(), *command, "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        section, options, subcommands = None, set(), []
        for line in result.stdout.splitlines():
            if re.match(r"^[A-Z]+:", line):
                section = line.split(":")[0]
            elif section == "OPTIONS" and line.startswith("  -"):
                # The option column ends where two spaces start the description.
                options.update(re.findall(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)", line.strip().split("  ")[0]))
            elif section == "SUBCOMMANDS" and (m := re.match(r"^  ([a-z][a-z0-9-]*)(\s|$)", line)):
                subcommands.append(m[1])
        self.options[command] = options
        self.subcommands[command] = subcommands
        for name in subcommands:
            self._read(command + (name,))


@pytest.fixture(scope="module")
def cli_help() -> Help:
    return Help()


# Not the user or group of that name (`sudo -u dbaudit-gateway dbaudit-gateway run`, `install -g dbaudit-gateway`).
BINARY = re.compile(r"(?:^|(?<=[\s/($]))(?<!-[ug] )dbaudit-gateway(?=\s|$)")
SEPARATORS = re.compile(r"\|\||&&|[|;)]|\s#")


def command_texts():
    """(text, where) of every place a command may be written: inline code spans and
    lines of fenced blocks in Markdown (a trailing backslash joins lines); every line of
    the example configuration and the systemd files."""
    for path in documents():
        text = path.read_text()
        name = path.relative_to(ROOT)
        for span, line in code_spans(text):
            yield " ".join(span.split()), f"{name}:{line}"
        for _, body, first in fenced_blocks(text):
            for offset, line in enumerate(body.replace("\\\n", " ").splitlines()):
                yield line, f"{name}:{first + offset}"
    for path in [EXAMPLE, *sorted((ROOT / "systemd").glob("*"))]:
        if path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                yield line, f"{path.relative_to(ROOT)}:{number}"


def invocations(text: str, top_level: list):
    """The words after each gateway invocation in `text` (up to a shell separator): after
    the binary's name, or all of a span that starts with a top-level subcommand
    (`keys create --test`)."""
    starts = [m.end() for m in BINARY.finditer(text)]
    first = text.split(" ", 1)[0]
    if not starts and first in top_level:
        starts = [0]
    for start in starts:
        rest = SEPARATORS.split(text[start:], maxsplit=1)[0]
        yield rest


def test_every_documented_flag_is_in_the_subcommands_help(cli_help):
    top_level = cli_help.subcommands[()]
    problems, checked = [], 0
    for text, where in command_texts():
        for rest in invocations(text, top_level):
            command = ()
            words = rest.split()
            index = 0
            known = True
            # Walk down the subcommands named right after the binary.
            while index < len(words) and cli_help.subcommands.get(command):
                word = words[index]
                if word in cli_help.subcommands[command]:
                    command += (word,)
                    index += 1
                elif command and word != "help" and IDENTIFIER.match(word.replace("-", "_")):
                    problems.append(f"{where}: `{' '.join(('dbaudit-gateway',) + command + (word,))}`: "
                                    f"no such subcommand in --help (has: {', '.join(cli_help.subcommands[command])})")
                    known = False
                    break
                else:
                    break  # the binary's name used as a word, a placeholder, "help"
            if not known:
                continue  # its flags belong to a subcommand that does not exist
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(words[index:])):
                checked += 1
                if flag not in cli_help.options[command]:
                    problems.append(f"{where}: `{' '.join(('dbaudit-gateway',) + command)} {flag}` "
                                    f"is not in its --help ({', '.join(sorted(cli_help.options[command]))})")
    assert checked >= 10, f"only {checked} documented flags found: is the command recognition broken?"
    assert not problems, "documented command lines that --help does not know:\n" + "\n".join(problems)


# --- error codes and metrics ----------------------------------------------------------------

def documented_table_codes(path: Path, column: int) -> set:
    """The single code span of column `column` in every table row of `path`."""
    codes = set()
    lines = without_fences(path.read_text()).splitlines()
    for index, line in enumerate(lines):
        is_header = index + 1 < len(lines) and lines[index + 1].startswith("|--")
        if line.startswith("|") and not is_header:
            cells = table_cells(line)
            spans = CODE_SPAN.findall(cells[column]) if len(cells) > column else []
            if len(spans) == 1 and cells[column] == f"`{spans[0]}`":
                codes.add(spans[0])
    return codes


def test_errors_page_lists_every_error_code_the_sources_define():
    # Every GatewayError is built with `code: ...` (a literal, or a choice of literals);
    # the page's table has the code in its second column.
    defined = set()
    for source in (ROOT / "Sources").rglob("*.swift"):
        for rest in re.findall(r"\bcode: ([^\n]*)", source.read_text()):
            defined.update(re.findall(r'"([a-z_]+)"', rest.split("description:")[0]))
    assert "invalid_request" in defined, "no error codes found in Sources/"
    documented = documented_table_codes(DOCS / "errors.md", 1)
    assert not defined - documented, f"docs/errors.md does not list: {sorted(defined - documented)}"
    assert not documented - defined, f"docs/errors.md lists codes no source defines: {sorted(documented - defined)}"


def test_operations_page_lists_every_metric_the_gateway_exports(make_gateway, upstream):
    gateway = make_gateway(upstream.url, tail='[admin]\nlisten = "127.0.0.1:0"\n')
    text = requests.get(f"http://127.0.0.1:{admin_port(gateway)}/metrics", timeout=10).text
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    assert "dbgw_requests_total" in exported, text[:500]
    documented = {name for name in documented_table_codes(DOCS / "operations.md", 0) if name.startswith("dbgw_")}
    assert not exported - documented, f"docs/operations.md does not list: {sorted(exported - documented)}"
    assert not documented - exported, f"docs/operations.md lists metrics /metrics does not export: {sorted(documented - exported)}"


# --- nothing outside the repository is cited -------------------------------------------------

def test_no_file_cites_notes_outside_the_repository():
    # Built from parts so this file does not match itself.
    names = [stem + ".md" for stem in ("PRODUCT", "ARCHITECTURE", "PERFORMANCE", "STYLE")] + [".." + "/shared"]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    offenders = []
    for entry in filter(None, listed):
        path = ROOT / entry.decode()
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name in names:
            if name.encode() in data:
                line = data[:data.index(name.encode())].count(b"\n") + 1
                offenders.append(f"{entry.decode()}:{line}: {name}")
    assert not offenders, "files citing notes outside the repository (describe it in docs/ instead):\n" + "\n".join(offenders)
