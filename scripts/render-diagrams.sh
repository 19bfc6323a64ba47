#!/usr/bin/env bash
# Renders every docs/*.mmd to the SVG beside it with mermaid-cli (the version pinned in
# tools/diagrams/package-lock.json, from the npm registry), and copies each source into the
# ```mermaid block of the .md of the same name, so the three never drift apart.
#
# Needs node + npm and Debian's chromium (`apt-get install nodejs npm chromium`). Puppeteer's
# own browser download is skipped (it fails without internet access beyond the registries);
# mermaid-cli drives the system chromium instead (CHROMIUM overrides its path).
#
# Each SVG starts with a comment naming the sha256 of its source; testkit/tests/docs_commands.rs
# checks it, so a diagram edited without re-rendering fails `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=tools/diagrams
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"

for cmd in node npm; do
  command -v "$cmd" >/dev/null || { echo "render-diagrams: $cmd not found (apt-get install nodejs npm)" >&2; exit 1; }
done
[ -x "$chromium" ] || { echo "render-diagrams: chromium not found (apt-get install chromium, or set CHROMIUM)" >&2; exit 1; }

# Install (or reinstall after a lock change) exactly what the lock pins.
stamp="$tools/node_modules/.package-lock.sha256"
want=$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$tools/node_modules/.bin/mmdc" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing mermaid-cli from $tools/package-lock.json…" >&2
  (cd "$tools" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/puppeteer.json" <<EOF
{
  "executablePath": "$chromium",
  "args": ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
}
EOF
# Plain SVG text instead of HTML labels in foreignObject: the SVG then looks the same in
# viewers that do not render foreignObject. Fonts every machine here has (Debian's).
cat > "$work/mermaid.json" <<'EOF'
{
  "theme": "neutral",
  "layout": "elk",
  "elk": { "considerModelOrder": "NODES_AND_EDGES" },
  "themeVariables": { "fontFamily": "DejaVu Sans, Liberation Sans, Arial, sans-serif", "fontSize": "14px" },
  "flowchart": { "htmlLabels": false, "curve": "basis", "nodeSpacing": 30, "rankSpacing": 40, "wrappingWidth": 600 }
}
EOF

shopt -s nullglob
for src in docs/*.mmd; do
  svg="${src%.mmd}.svg"
  md="${src%.mmd}.md"
  "$tools/node_modules/.bin/mmdc" --quiet -p "$work/puppeteer.json" -c "$work/mermaid.json" \
    -b white -i "$src" -o "$work/out.svg"
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  { echo "<!-- rendered from $src (sha256 $sum) by scripts/render-diagrams.sh -->"; cat "$work/out.svg"; echo; } > "$svg"
  echo "rendered $svg ($(wc -c < "$svg") bytes)"
  if [ -f "$md" ] && grep -q '^```mermaid$' "$md"; then
    # Replace the body of the first ```mermaid block with the source.
    awk -v src="$src" '
      !done && /^```mermaid$/ { print; while ((getline line < src) > 0) print line; skipping = 1; next }
      skipping && /^```$/ { skipping = 0; done = 1 }
      !skipping { print }
    ' "$md" > "$work/md" && cat "$work/md" > "$md"
    echo "copied $src into $md"
  fi
done
