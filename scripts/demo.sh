#!/usr/bin/env bash
# `make demo`: the app end to end on the bundled sim video with the default model, publishing over MQTT.
#
# 1. uses models/tray_detector.onnx, or - until training has produced it - exports an UNTRAINED detector
#    to a temporary file and says so loudly (its counts are then meaningless);
# 2. uses sim/assets/demo_line1.mp4, or generates a sim video when the bundled one is missing;
# 3. starts a local mosquitto on a free port, unless EDGE_APP_MQTT_PORT (and EDGE_APP_MQTT_HOST) name one;
# 4. runs `edge-app run` on a temporary copy of configs/demo.yaml (absolute paths, that broker, a fresh state
#    folder so every demo starts from zero), with mosquitto_sub listening on <topic_prefix>/#;
# 5. prints a few of the messages, then the per-stream summary: counted vs true trays.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
EDGE=.venv/bin/edge-app
[ -x "$EDGE" ] || { echo "error: $EDGE not found: run 'make setup' first" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-app-demo.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

loud() {
  local bar="********************************************************************************"
  printf '\n\033[1;33m%s\n' "$bar"
  printf '%s\n' "$@"
  printf '%s\033[0m\n\n' "$bar"
}

MODEL=models/tray_detector.onnx
UNTRAINED=0
if [ ! -f "$MODEL" ]; then
  UNTRAINED=1
  loud "models/tray_detector.onnx is not there yet (training produces it: make model)." \
       "This demo runs an UNTRAINED ssd_300_mobilenet0.25 exported to a temporary file:" \
       "its detections are random and the counts below are NOT meaningful."
  MODEL="$WORK/untrained_tray_detector.onnx"
  "$PY" -c "import sys; from edge_app.detectors.export import export_gluoncv_detector as e; \
e('ssd_300_mobilenet0.25_custom', sys.argv[1], model_version='untrained-demo-ssd_300_mobilenet0.25')" "$MODEL" \
    2>&1 | grep -v -i warn || true
  [ -f "$MODEL" ] || { echo "error: exporting the untrained model failed" >&2; exit 1; }
fi

VIDEO=sim/assets/demo_line1.mp4
if [ ! -f "$VIDEO" ]; then
  echo "bundled demo video $VIDEO not found: generating a sim video (line-1, 2 bins, 640x360)"
  "$EDGE" sim generate --line line-1 --seed 1 --out "$WORK/sim" --width 640 --height 360 --bins 2 --sample-every 0
  VIDEO="$WORK/sim/video.mp4"
fi

HOST="${EDGE_APP_MQTT_HOST:-127.0.0.1}"
PORT="${EDGE_APP_MQTT_PORT:-}"
if [ -z "$PORT" ]; then
  PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  [ -x "$MOSQUITTO" ] || { echo "error: mosquitto not installed: run 'make setup'" >&2; exit 2; }
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$WORK/mosquitto.conf"
  "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
  PIDS+=($!)
  HOST=127.0.0.1
  for _ in $(seq 50); do
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$PORT" \
      2>/dev/null && break
    sleep 0.1
  done
  echo "started mosquitto on $HOST:$PORT"
fi

PREFIX=$("$PY" - "$WORK/demo.yaml" "$MODEL" "$VIDEO" "$HOST" "$PORT" "$WORK/state" <<'PYEOF'
import sys
from pathlib import Path

import yaml

out, model, video, host, port, state = sys.argv[1:]
base = Path("configs").resolve()
cfg = yaml.safe_load((base / "demo.yaml").read_text(encoding="utf-8"))
cfg["model"]["path"] = str(Path(model).resolve())
cfg["state_dir"] = state
cfg["streams"][0]["uri"] = str(Path(video).resolve())
for stream in cfg["streams"][1:]:
    if "://" not in stream["uri"]:
        stream["uri"] = str((base / stream["uri"]).resolve())
if cfg.get("output", {}).get("annotated_video_dir"):
    cfg["output"]["annotated_video_dir"] = str((base / cfg["output"]["annotated_video_dir"]).resolve())
cfg["mqtt"].update(host=host, port=int(port))
Path(out).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
print(cfg["mqtt"]["topic_prefix"])
PYEOF
)

mosquitto_sub -h "$HOST" -p "$PORT" -t "$PREFIX/#" -v >"$WORK/messages.txt" 2>/dev/null &
PIDS+=($!)
sleep 0.3

echo "running: edge-app run --config configs/demo.yaml (broker $HOST:$PORT, video $VIDEO)"
"$EDGE" run --config "$WORK/demo.yaml" | tee "$WORK/run.txt"
sleep 1

echo
echo "MQTT messages on $PREFIX/# ($(wc -l <"$WORK/messages.txt") received; the first ones and every bin):"
{ head -n 6 "$WORK/messages.txt"; grep " {" "$WORK/messages.txt" | grep "/bin " || true; } | cut -c1-200
echo
echo "Summary (counted vs true trays per stream):"
grep -v '^{' "$WORK/run.txt" | grep -v '^THIS RUN' || true
echo "Annotated video: out/demo/ (one .mp4 per stream)"
if [ "$UNTRAINED" = 1 ]; then
  loud "The model above was UNTRAINED: counts are random. Run 'make model' (or wait for" \
       "models/tray_detector.onnx) and 'make demo' again for real counts."
fi
