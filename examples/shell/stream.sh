#!/bin/sh
# Stream any audio file sox can read to a streamer server and print the final results.
#
#   examples/shell/stream.sh <audio file> [server url, default http://localhost:8080]
#
# sox converts the file to 16 kHz mono signed 16-bit little-endian PCM on a pipe; curl streams
# that pipe as the body of one HTTP/1.1 POST (chunked: the length is not known up front) to the
# streaming upload, the format in the query, and reads the Server-Sent Events answer while the
# upload goes on. Each final segment prints as one line:
#
#   final ch<channel> <start>-<end>
#
# Needs sox and curl; the SSE is parsed with POSIX sh and sed (no jq). `-` as the file reads
# the microphone instead (sox -d).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <audio file | -> [server url]" >&2
  exit 2
fi
file=$1
url=${2:-http://localhost:8080}
url=${url%/}

if [ "$file" = - ]; then
  set -- -d
else
  set -- "$file"
fi

# One JSON field of an SSE data line: the number after "name":
field() {
  printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p"
}

sox -q "$@" -t raw -r 16000 -e signed-integer -b 16 -c 1 - |
  curl -sS -N -X POST -T - -H 'Content-Type: application/octet-stream' \
    "$url/api/v1/segmented?sample_rate=16000&channels=1&bit_depth=16&is_float=false" |
  while IFS= read -r line; do
    # Every event's data line is the same JSON as on the WebSocket; only the finals print.
    case $line in
      'data: '*'"type":"segment"'*)
        case $line in
          *'"is_final":true'*)
            printf 'final ch%s %s-%s\n' "$(field channel "$line")" "$(field start_time "$line")" "$(field end_time "$line")"
            ;;
        esac
        ;;
      'data: '*'"type":"error"'*)
        printf 'error %s\n' "${line#data: }" >&2
        ;;
    esac
  done
