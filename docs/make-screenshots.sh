#!/bin/sh
# The pictures in docs/teaching.md, made by Ringside itself: each lesson's
# screen (its explanations) with the overlay panel below it (CPL, mode,
# paging, IOPL and the last trap-log events), exactly as the window shows
# them, written headless at one of the lesson's pauses. The runs are
# deterministic, so the pictures change only when a lesson or the panel
# does. Run from anywhere: ./docs/make-screenshots.sh [path/to/ringside]
set -eu
cd "$(dirname "$0")/.."
ringside=${1:-target/release/ringside}
if [ ! -x "$ringside" ]; then
    cargo build --release
fi
out=docs/img
mkdir -p "$out"

# NAME PAUSE FILE [trap-log options...]: the lesson's screen at its PAUSEth
# pause (0: at its end).
shot() {
    name=$1 pause=$2 file=$3
    shift 3
    if [ "$pause" = 0 ]; then
        at=""
    else
        at="--screenshot-pause $pause"
    fi
    # shellcheck disable=SC2086
    "$ringside" lesson "$name" --headless --no-pause --screenshot "$out/$file" $at "$@" >/dev/null
    echo "$out/$file"
}

shot rings 3 rings-int80.png
shot rings 0 rings-end.png
shot privileged 3 privileged-traps.png --trap-log-events trap
shot holes 3 holes-sensitive.png --trap-log-events sensitive
shot v86 0 v86-monitor.png
# The built-in demo with the panel, as `ringside demo --overlay` shows it.
"$ringside" demo --headless --overlay --debugcon null --screenshot "$out/demo-overlay.png" >/dev/null 2>&1
echo "$out/demo-overlay.png"
