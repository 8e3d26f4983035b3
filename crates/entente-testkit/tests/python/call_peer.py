"""One side of a 1:1 audio call in aiortc, driven by `call_interop.rs`.

Talks JSON lines: commands on stdin, events on stdout (logs go to stderr).

Commands:
  {"cmd": "answer", "sdp": OFFER, "play": WAV, "record": WAV}
      take the offer, answer it (non-trickle: aiortc gathers its candidates first,
      so the answer carries them); events: answer
  {"cmd": "offer", "play": WAV, "record": WAV}
      make an offer (with candidates); events: offer
  {"cmd": "remote_answer", "sdp": ANSWER}
      take the answer to our offer
  {"cmd": "stop"}
      stop recording, hang up; events: stopped, then the script exits

Events besides the ones above: {"event": "state", "state": S} for every
connection state, {"event": "first_frame"} when the first decoded audio frame
arrives, {"event": "error", "message": M} before exiting on failure.

The call plays WAV with aiortc's MediaPlayer (paced in real time; aiortc
encodes it with libopus through PyAV) and writes every decoded frame that
arrives to the WAV at `record` (16-bit, as aiortc decodes it: 48 kHz stereo).
"""

import asyncio
import json
import sys
import traceback
import wave

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError


def loopback_addresses(use_ipv4, use_ipv6):
    """aioice gathers host candidates on every interface except loopback; the
    test runs on loopback only."""
    return ["127.0.0.1"]


aioice.ice.get_host_addresses = loopback_addresses


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def log(message):
    sys.stderr.write(f"call_peer.py: {message}\n")
    sys.stderr.flush()


class Recorder:
    """Writes the received audio frames to a WAV file."""

    def __init__(self, path):
        self.path = path
        self.frames = 0
        self.samples = 0
        self.task = None
        self.wav = None

    def start(self, track):
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                log("the received track ended")
                return
            if self.wav is None:
                emit("first_frame")
                log(
                    f"first frame: {frame.format.name} {frame.layout.name} "
                    f"{frame.sample_rate} Hz, {frame.samples} samples"
                )
                if frame.format.name != "s16":
                    raise RuntimeError(f"expected s16 frames, got {frame.format.name}")
                self.channels = len(frame.layout.channels)
                self.wav = wave.open(self.path, "wb")
                self.wav.setnchannels(self.channels)
                self.wav.setsampwidth(2)
                self.wav.setframerate(frame.sample_rate)
            size = frame.samples * self.channels * 2
            self.wav.writeframes(bytes(frame.planes[0])[:size])
            self.frames += 1
            self.samples += frame.samples

    async def stop(self):
        if self.task is not None:
            if self.task.done() and self.task.exception() is not None:
                raise self.task.exception()
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.wav is not None:
            self.wav.close()


async def read_command():
    line = await asyncio.to_thread(sys.stdin.readline)
    if not line:
        raise RuntimeError("stdin closed before a stop command")
    return json.loads(line)


async def main():
    # No STUN or TURN servers: aiortc would otherwise ask Google's STUN server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    recorder = None
    player = None

    @pc.on("connectionstatechange")
    async def on_state():
        log(f"connection state {pc.connectionState}")
        emit("state", state=pc.connectionState)

    @pc.on("track")
    def on_track(track):
        log(f"remote track {track.kind}")
        if track.kind == "audio" and recorder is not None:
            recorder.start(track)

    try:
        while True:
            cmd = await read_command()
            kind = cmd["cmd"]
            if kind == "answer":
                recorder = Recorder(cmd["record"])
                player = MediaPlayer(cmd["play"])
                await pc.setRemoteDescription(RTCSessionDescription(cmd["sdp"], "offer"))
                # After the offer, so the track goes on the offered transceiver.
                pc.addTrack(player.audio)
                await pc.setLocalDescription(await pc.createAnswer())
                emit("answer", sdp=pc.localDescription.sdp)
            elif kind == "offer":
                recorder = Recorder(cmd["record"])
                player = MediaPlayer(cmd["play"])
                pc.addTrack(player.audio)
                await pc.setLocalDescription(await pc.createOffer())
                emit("offer", sdp=pc.localDescription.sdp)
            elif kind == "remote_answer":
                await pc.setRemoteDescription(RTCSessionDescription(cmd["sdp"], "answer"))
            elif kind == "stop":
                if recorder is not None:
                    await recorder.stop()
                await pc.close()
                emit(
                    "stopped",
                    frames=recorder.frames if recorder else 0,
                    samples=recorder.samples if recorder else 0,
                )
                return
            else:
                raise RuntimeError(f"unknown command {kind!r}")
    except Exception as e:
        traceback.print_exc()
        emit("error", message=f"{type(e).__name__}: {e}")
        await pc.close()
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
