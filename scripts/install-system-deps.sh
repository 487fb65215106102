#!/usr/bin/env bash
# Installs the Debian packages the app and its tests use, only those that are missing.
# mosquitto: the real MQTT broker for tests and the demo; ffmpeg + GStreamer RTSP server: camera replay.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools)
python3 -c "import gi" 2>/dev/null || need+=(python3-gi)
dpkg -s gir1.2-gst-rtsp-server-1.0 >/dev/null 2>&1 || need+=(gir1.2-gst-rtsp-server-1.0)
# chromium + chromium-driver: the dashboard's end-to-end test (headless Chromium driven by Selenium)
command -v chromium >/dev/null || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
for p in gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
