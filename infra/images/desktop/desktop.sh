#!/bin/sh
# Xvfb, then the two VNC servers, then the terminal as the container's main process: the
# container ends when its terminal does. Arguments, if any, are the command the terminal
# runs instead of a shell.
set -eu
Xvfb :0 -screen 0 "${WIDTH}x${HEIGHT}x24" -nolisten tcp &
export DISPLAY=:0
i=0
while [ ! -e /tmp/.X11-unix/X0 ] && [ "$i" -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
x11vnc -display :0 -rfbport 5900 -shared -forever -nopw -quiet -bg -o /tmp/x11vnc.log
x11vnc -display :0 -rfbport 5901 -shared -forever -nopw -viewonly -quiet -bg -o /tmp/x11vnc-view.log
set -- xterm -geometry 120x36+0+0 -fn 10x20 -bg "#203a60" -fg white ${1:+-e} "$@"
exec "$@"
