# shellcheck shell=bash
# Sourced by setup.sh and launcher_image.sh: where to fetch Debian 13 (trixie) from.
#
#   . tests/e2e/trixie_mirrors.sh
#   for mirror in $(trixie_mirrors); do ...; done
#
# Prints candidate mirror URIs, best first, each once: the URI of every entry of the
# machine's own Debian sources (deb822 .sources or one-line .list) that carries the system's
# own suite (e.g. bookworm), then http://deb.debian.org/debian as a fallback in case that
# mirror has no trixie. Reads only /etc/os-release and /etc/apt; touches nothing.
trixie_mirrors() {
  local codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && awk -v c="$codename" '
        function flush() { if (u != "" && s) print u; u = ""; s = 0 }
        /^URIs:/ { u = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) s = 1 }
        /^[[:space:]]*$/ { flush() }
        END { flush() }' "$f"
    done
    grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk -v c="$codename" '$2 == c {print $1}'
    echo http://deb.debian.org/debian
  } | awk '!seen[$0]++'
}
