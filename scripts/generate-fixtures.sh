#!/usr/bin/env bash
# Regenerates the speech fixtures in test/fixtures/audio/ (<name>.wav and its truth <name>.json)
# and examples/speech.wav, the README's example file (a copy of hello_16k_mono.wav).
#
# Speech is synthesised by espeak-ng, one sentence per file, with a fixed voice, speed, pitch and
# amplitude so that a rerun on the same Debian packages gives the same bytes. Each sentence is
# trimmed of its leading and trailing silence, so its true length is its sample count; the
# sentences are then laid out between silences of known length. The truth regions in the JSON
# are therefore exact by construction, not measured by a VAD.
#
# Needs: espeak-ng, sox (Debian: apt-get update && apt-get install -y espeak-ng sox).
# Usage, from anywhere: bash scripts/generate-fixtures.sh
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/test/fixtures/audio"
EXAMPLES="$ROOT/examples"

for tool in espeak-ng sox soxi; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get update && apt-get install -y espeak-ng sox" >&2; exit 1; }
done

# espeak-ng settings: a fixed voice and speed make the result repeatable.
VOICE=en-us
SPEED=175 # words per minute (espeak-ng's default)
PITCH=50
AMPLITUDE=100

# Layout, in seconds. The gaps are well over the VAD's 500 ms min_silence, so each sentence is
# one utterance; espeak's own pauses inside a sentence (commas) are far shorter.
LEAD=0.5
TRAIL=0.8

# sox -R: repeatable mode, so the dither added when writing 16-bit samples is seeded the same.
SOX=(sox -R -V1)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT" "$EXAMPLES"

samples () { soxi -s "$1"; }
seconds_to_samples () { awk -v s="$1" -v r="$2" 'BEGIN { printf "%d", s * r + 0.5 }'; }
# Times in the JSON: samples / rate, to the millisecond.
sec () { awk -v n="$1" -v r="$2" 'BEGIN { printf "%.3f", n / r }'; }
json_string () { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

# utterance TEXT RATE OUT: one sentence, mono 32-bit float at RATE, with no silence before or
# after it (the first and last 5 ms above -60 dB bound it). Prints its length in samples.
utterance () {
  local text=$1 rate=$2 out=$3
  local raw="$out.espeak.wav"
  espeak-ng -v "$VOICE" -s "$SPEED" -p "$PITCH" -a "$AMPLITUDE" -w "$raw" "$text"
  "${SOX[@]}" "$raw" -e floating-point -b 32 "$out" rate -v "$rate" \
    silence 1 0.005 0.1% reverse silence 1 0.005 0.1% reverse
  samples "$out"
}

# silence RATE SAMPLES OUT: digital silence. The rate goes before -n: after it, it would be the
# output's rate, and the null input's default 48 kHz would be resampled.
silence () { "${SOX[@]}" -r "$1" -c 1 -n -e floating-point -b 32 "$3" trim 0 "$2s"; }

# exact FILE SAMPLES: the truth is only exact if the file is as long as the layout says.
exact () {
  local got
  got=$(samples "$1")
  [ "$got" -eq "$2" ] || { echo "$1: $got samples, the layout says $2" >&2; exit 1; }
}

# track RATE TOTAL OUT START1 PIECE1 [START2 PIECE2 ...]: the pieces placed at the given sample
# offsets (in order, not overlapping) in TOTAL samples of digital silence.
track () {
  local rate=$1 total=$2 out=$3
  shift 3
  local parts=() at=0 n=0
  while [ $# -gt 0 ]; do
    local start=$1 piece=$2
    shift 2
    n=$((n + 1))
    if [ "$start" -gt "$at" ]; then
      silence "$rate" "$((start - at))" "$out.gap$n.wav"
      parts+=("$out.gap$n.wav")
    fi
    parts+=("$piece")
    at=$((start + $(samples "$piece")))
  done
  silence "$rate" "$((total - at))" "$out.tail.wav"
  parts+=("$out.tail.wav")
  "${SOX[@]}" "${parts[@]}" "$out"
  exact "$out" "$total"
}

# regions RATE START1 LENGTH1 ...: the JSON list of [start, end] in seconds.
regions () {
  local rate=$1 list=''
  shift
  while [ $# -gt 0 ]; do
    list+="${list:+, }[$(sec "$1" "$rate"), $(sec $(($1 + $2)) "$rate")]"
    shift 2
  done
  printf '[%s]' "$list"
}

strings () {
  local list=''
  for s in "$@"; do list+="${list:+, }$(json_string "$s")"; done
  printf '[%s]' "$list"
}

# mono NAME RATE ENCODING BITS GAP TEXT...: the sentences one after another, GAP seconds apart.
mono () {
  local name=$1 rate=$2 encoding=$3 bits=$4 gap=$5
  shift 5
  local at places=() spans=() i=0 len
  at=$(seconds_to_samples "$LEAD" "$rate")
  for text in "$@"; do
    i=$((i + 1))
    len=$(utterance "$text" "$rate" "$TMP/$name-$i.wav")
    places+=("$at" "$TMP/$name-$i.wav")
    spans+=("$at" "$len")
    at=$((at + len + $(seconds_to_samples "$gap" "$rate")))
  done
  local total=$((spans[-2] + spans[-1] + $(seconds_to_samples "$TRAIL" "$rate")))
  track "$rate" "$total" "$TMP/$name.wav" "${places[@]}"
  "${SOX[@]}" "$TMP/$name.wav" -e "$encoding" -b "$bits" "$OUT/$name.wav"
  exact "$OUT/$name.wav" "$total"
  cat > "$OUT/$name.json" <<EOF
{
  "sample_rate": $rate,
  "channels": 1,
  "encoding": "$encoding",
  "bits": $bits,
  "duration": $(sec "$total" "$rate"),
  "speech": $(regions "$rate" "${spans[@]}"),
  "texts": $(strings "$@")
}
EOF
}

# Two sentences with a pause; the README's example file too.
mono hello_16k_mono 16000 signed-integer 16 1.2 \
  'Good morning, this is our own test recording.' \
  'A second sentence follows the pause.'

# Several short utterances at telephone rate. The first ends early (well within the first 40 %
# of the file): tests cut the stream there.
mono counting_8k_mono 8000 signed-integer 16 1.3 \
  'Ten, twenty, thirty.' \
  'Forty, fifty, sixty, seventy.' \
  'Eighty, ninety, one hundred.'

# 32-bit float at 48 kHz.
mono weather_48k_f32 48000 floating-point 32 1.2 \
  'Cloudy skies over the hills.' \
  'Rain tonight.'

# Stereo: each channel its own speech. The right channel answers in the left's pause and is
# still talking when the left speaks again, so the channels' regions differ and overlap in time.
dialogue () {
  local name=dialogue_44k_stereo rate=44100
  local l1 l2 r1 a b c
  a=$(utterance 'Left speaks first.' "$rate" "$TMP/$name-l1.wav")
  b=$(utterance 'Left again.' "$rate" "$TMP/$name-l2.wav")
  c=$(utterance 'Right answers now.' "$rate" "$TMP/$name-r1.wav")
  l1=$(seconds_to_samples "$LEAD" "$rate")
  r1=$((l1 + a + $(seconds_to_samples 0.4 "$rate")))
  l2=$((l1 + a + $(seconds_to_samples 1.3 "$rate")))
  local last=$((l2 + b > r1 + c ? l2 + b : r1 + c))
  local total=$((last + $(seconds_to_samples "$TRAIL" "$rate")))
  track "$rate" "$total" "$TMP/$name-left.wav" "$l1" "$TMP/$name-l1.wav" "$l2" "$TMP/$name-l2.wav"
  track "$rate" "$total" "$TMP/$name-right.wav" "$r1" "$TMP/$name-r1.wav"
  "${SOX[@]}" -M "$TMP/$name-left.wav" "$TMP/$name-right.wav" -e signed-integer -b 16 "$OUT/$name.wav"
  exact "$OUT/$name.wav" "$total"
  cat > "$OUT/$name.json" <<EOF
{
  "sample_rate": $rate,
  "channels": 2,
  "encoding": "signed-integer",
  "bits": 16,
  "duration": $(sec "$total" "$rate"),
  "speech_by_channel": [
    $(regions "$rate" "$l1" "$a" "$l2" "$b"),
    $(regions "$rate" "$r1" "$c")
  ],
  "texts_by_channel": [
    $(strings 'Left speaks first.' 'Left again.'),
    $(strings 'Right answers now.')
  ]
}
EOF
}
dialogue

# One long run of speech: sentences 200 ms apart, far below the VAD's 500 ms min_silence, so the
# VAD keeps it one utterance. A test with a low limits.max_utterance_seconds checks that the
# runner cuts it inside these short gaps, not mid-word. `speech` is the one region from the first
# sentence's start to the last one's end; `gaps` lists the true pauses between the sentences.
# 200 ms, not less: in a 150 ms gap Silero stays below its threshold for as few frames as in the
# stop closures of some words here, so a gap would not be the clearly quietest point. Sentences
# of at most ~2.6 s (a 3 s cut window always holds a gap), with no commas (espeak pauses at a
# comma, which would be a gap the JSON does not list).
run_on () {
  local name=long_pauses_16k_mono rate=16000 gap=0.2
  local at i=0 k len places=() starts=() ends=()
  at=$(seconds_to_samples "$LEAD" "$rate")
  for text in "$@"; do
    i=$((i + 1))
    len=$(utterance "$text" "$rate" "$TMP/$name-$i.wav")
    places+=("$at" "$TMP/$name-$i.wav")
    starts+=("$at")
    ends+=("$((at + len))")
    at=$((at + len + $(seconds_to_samples "$gap" "$rate")))
  done
  local first=${starts[0]} last=${ends[-1]}
  local total=$((last + $(seconds_to_samples "$TRAIL" "$rate")))
  local gaps=()
  for ((k = 1; k < ${#starts[@]}; k++)); do gaps+=("${ends[k - 1]}" "$((starts[k] - ends[k - 1]))"); done
  track "$rate" "$total" "$TMP/$name.wav" "${places[@]}"
  "${SOX[@]}" "$TMP/$name.wav" -e signed-integer -b 16 "$OUT/$name.wav"
  exact "$OUT/$name.wav" "$total"
  cat > "$OUT/$name.json" <<EOF
{
  "sample_rate": $rate,
  "channels": 1,
  "encoding": "signed-integer",
  "bits": 16,
  "duration": $(sec "$total" "$rate"),
  "speech": $(regions "$rate" "$first" "$((last - first))"),
  "gaps": $(regions "$rate" "${gaps[@]}"),
  "texts": $(strings "$@")
}
EOF
}
run_on \
  'The quick brown fox jumps over the lazy dog.' \
  'Seven ships sailed past the harbour light.' \
  'We walked along the river before dinner.' \
  'Please bring the blue folder to my desk.' \
  'Music drifted softly through the open window.' \
  'The train leaves the station at nine.' \
  'Fresh bread smells wonderful in the morning.'

cp "$OUT/hello_16k_mono.wav" "$EXAMPLES/speech.wav"
