#!/usr/bin/python3
"""Environment-specific rewrite of a real dstack example compose file (examples/dstack/*).

    compose_transform.py SRC DST [options]

Only what must point at this machine changes; everything else (tmpfs, restart,
the config's other keys, the workload's service settings) is kept as the example has it.
The `launcher` service:
  --launcher-image IMG     its image (instead of the release placeholder)
  --dstack-sock PATH       tee mode, as in production: the /var/run/dstack.sock volume's
                           source becomes PATH (the fake agent, fake-dstack-agent)
  --cvm-host               instead of --dstack-sock/--docker-sock: the engine is
                           cvm_host.sh's, whose /var/run holds the fake agent's dstack.sock
                           and its own docker.sock, so the example's socket paths stay
  The launcher gets `network_mode: host` (the registry listens on this machine's 127.0.0.1).
  --docker-sock PATH       the /var/run/docker.sock volume's source (the private dockerd)
  --env NAME=VALUE         an `environment:` entry (repeatable)
  --volume SPEC            an extra volume (repeatable), e.g. /host/repo.bundle:/repo.bundle:ro
The inline launcher config (the `configs:` entry mounted at the path `command:` names):
  --set KEY=VALUE          TOML ([image] table, [image.service] for service.KEY): `KEY = VALUE`,
                           VALUE a TOML literal, replacing the key's line or added at the
                           table's end; line format: `KEY=VALUE` replacing the key's line
  --table NAME             the TOML table --set edits instead of [image] (e.g. launcher_config
                           for NEAR's user config)
  --drop KEY               remove the key's line (line format)
  --host-template TARGET=FILE
                           a second inline `configs:` entry, mounted on the launcher at TARGET:
                           FILE (the built-in template, assets/compose.yaml) with
                           `network_mode: host` added to the workload service; the config gets
                           `compose_template = "TARGET"`
Prints nothing; the result is plain YAML (comments are not kept).
"""
import argparse
import re
import sys

import yaml

DSTACK_SOCKET = "/var/run/dstack.sock"
DOCKER_SOCKET = "/var/run/docker.sock"


class Literal(str):
    pass


yaml.SafeDumper.add_representer(
    Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|")
)


def pair(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text}")
    return tuple(text.split("=", 1))


def edit_toml(content, key, value, table_name="image"):
    """Replace `key = ...` in the [TABLE] table ([TABLE.service] for `service.KEY`), else add
    it at the table's end."""
    want = table_name
    if key.startswith("service."):
        want, key = f"{table_name}.service", key[len("service."):]
    lines = content.splitlines()
    table, start, end = None, None, len(lines)
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            if table == want:
                end = i
                break
            table = header.group(1).strip()
            if table == want:
                start = i
    if start is None:
        sys.exit(f"compose_transform: no [{want}] table in the launcher config for {key}")
    for i in range(start + 1, end):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            lines[i] = f"{key} = {value}"
            break
    else:
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        lines.insert(end, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def edit_lines(content, key, value):
    lines = content.splitlines()
    hits = [i for i, l in enumerate(lines) if l.lstrip().startswith(f"{key}=")]
    if len(hits) != 1:
        sys.exit(f"compose_transform: {key} occurs {len(hits)} times in the launcher config")
    if value is None:
        del lines[hits[0]]
    else:
        lines[hits[0]] = f"{key}={value}"
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--launcher-image", required=True)
    p.add_argument("--dstack-sock")
    p.add_argument("--cvm-host", action="store_true")
    p.add_argument("--docker-sock")
    p.add_argument("--env", type=pair, action="append", default=[])
    p.add_argument("--volume", action="append", default=[])
    p.add_argument("--set", type=pair, action="append", default=[])
    p.add_argument("--drop", action="append", default=[])
    p.add_argument("--host-template", type=pair)
    p.add_argument("--table", default="image")
    a = p.parse_args()
    if bool(a.dstack_sock) == a.cvm_host:
        p.error("give exactly one of --dstack-sock and --cvm-host")

    with open(a.src) as f:
        doc = yaml.safe_load(f)
    launcher = doc["services"]["launcher"]

    launcher["image"] = a.launcher_image
    launcher["network_mode"] = "host"
    command = list(launcher.get("command") or [])

    volumes = []
    for v in launcher.get("volumes") or []:
        source, _, rest = v.partition(":")
        if a.cvm_host:
            pass
        elif source == DSTACK_SOCKET:
            v = f"{a.dstack_sock}:{rest}"
        elif source == DOCKER_SOCKET:
            if not a.docker_sock:
                sys.exit("compose_transform: the example mounts the docker socket: --docker-sock")
            v = f"{a.docker_sock}:{rest}"
        volumes.append(v)
    volumes.extend(a.volume)
    launcher["volumes"] = volumes

    if a.env:
        env = launcher.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        env.update(dict(a.env))
        launcher["environment"] = env

    # The inline config mounted where `command:` says the config is.
    path = command[-1]
    mount = next(c for c in launcher["configs"] if c["target"] == path)
    entry = doc["configs"][mount["source"]]
    content = entry["content"]
    toml = bool(re.search(r"^\s*\[", content, re.M))
    settings = list(a.set)
    if a.host_template:
        target, source = a.host_template
        with open(source) as f:
            template = f.read()
        template, n = re.subn(
            r"^(\s+)(container_name: .*)$", r"\1\2\n\1network_mode: host", template, flags=re.M
        )
        if n != 1:
            sys.exit(f"compose_transform: no container_name line in {source}")
        doc["configs"]["compose-template"] = {"content": Literal(template)}
        launcher["configs"].append({"source": "compose-template", "target": target})
        settings.append(("compose_template", f'"{target}"'))
    for key, value in settings:
        content = edit_toml(content, key, value, a.table) if toml else edit_lines(content, key, value)
    for key in a.drop:
        content = edit_lines(content, key, None)
    entry["content"] = Literal(content)

    with open(a.dst, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=1000)


if __name__ == "__main__":
    main()
