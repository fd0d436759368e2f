// The caption page: join a room with a name, publish the microphone, show everyone's captions.
//
// Served by the kit's join service (stt_agent/room/join_service.py) beside `join`, which mints
// this browser's token on the server side. LiveKit's SDK is the vendored livekit-client
// (window.LivekitClient). Captions are the `lk.transcription` text streams the kit's worker
// publishes through LiveKit's room IO: one stream per update of a segment, the full text each
// time, `lk.transcription_final` "true" on the last one. A caption belongs to the owner of the
// track it transcribes (`lk.transcribed_track_id`), not to whoever sent the stream.

"use strict";

const LK = window.LivekitClient;
const TOPIC = "lk.transcription";
const SEGMENT_ID = "lk.segment_id";
const TRACK_ID = "lk.transcribed_track_id";
const FINAL = "lk.transcription_final";
// The same colours, in the same order of appearance, as the notebook's views (ui/speakers.py).
const COLOURS = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#bc4c00", "#0a7b83", "#9a6700", "#cf222e"];
const MAX_CAPTIONS = 200; // older lines are dropped: a long workshop must not slow the page
const CLAIM_KEY = "stt-agent-claim"; // this tab's claim on its name, to rejoin after a reload

const MIC_MESSAGES = {
  denied: "The browser was not allowed to use the microphone. Allow it for this page (the icon in the address bar) and join again. You can still read the captions.",
  "no-device": "No microphone was found. Connect one and join again. You can still read the captions.",
  insecure: "This page is not a secure context, so the browser offers no microphone. Open the join link as given (https://...). You can still read the captions.",
  error: "The microphone could not be opened (another application may be using it). You can still read the captions.",
};

const $ = (id) => document.getElementById(id);
const state = {
  room: null,
  mic: "off",
  colours: new Map(), // speaker identity -> colour
  segments: new Map(), // lk.segment_id -> {speaker, text, final, el}
};
window.captions = state; // for tests and the curious: what the page holds

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function setMic(micState, message = "") {
  state.mic = micState;
  $("mic").textContent = micState === "live" ? "on" : micState;
  // muted: the track stays published but sends nothing, so the server and the worker rest
  $("mute").hidden = micState !== "live" && micState !== "muted";
  $("mute").textContent = micState === "muted" ? "Unmute" : "Mute";
  $("mic").dataset.state = micState;
  const box = $("mic-message");
  box.textContent = message;
  box.hidden = !message;
}

function colourOf(identity) {
  if (!state.colours.has(identity)) {
    state.colours.set(identity, COLOURS[state.colours.size % COLOURS.length]);
  }
  return state.colours.get(identity);
}

// Who owns a track: the attribution a caption needs. null while the track is not known yet.
function ownerOfTrack(trackSid) {
  const room = state.room;
  if (!room || !trackSid) return null;
  const everyone = [room.localParticipant, ...room.remoteParticipants.values()];
  for (const participant of everyone) {
    if (participant.trackPublications.has(trackSid)) return participant.identity;
  }
  return null;
}

function render(segmentId) {
  const seg = state.segments.get(segmentId);
  if (!seg.el) {
    seg.el = document.createElement("p");
    seg.el.className = "caption";
    seg.el.dataset.segment = segmentId;
    const who = document.createElement("span");
    who.className = "speaker";
    const text = document.createElement("span");
    text.className = "text";
    seg.el.append(who, text);
    $("captions").append(seg.el);
    while ($("captions").childElementCount > MAX_CAPTIONS) {
      const oldest = $("captions").firstElementChild;
      state.segments.delete(oldest.dataset.segment);
      oldest.remove();
    }
  }
  const you = state.room && seg.speaker === state.room.localParticipant.identity;
  seg.el.dataset.speaker = seg.speaker;
  seg.el.dataset.final = String(seg.final);
  seg.el.firstChild.textContent = seg.speaker + (you ? " (you)" : "");
  seg.el.firstChild.style.color = colourOf(seg.speaker);
  seg.el.lastChild.textContent = seg.text;
  window.scrollTo(0, document.body.scrollHeight);
}

async function onTranscription(reader, participantInfo) {
  const attributes = reader.info.attributes || {};
  const text = await reader.readAll();
  const segmentId = attributes[SEGMENT_ID] || reader.info.id;
  const final = attributes[FINAL] === "true";
  const speaker = ownerOfTrack(attributes[TRACK_ID]) || participantInfo.identity;
  const known = state.segments.get(segmentId);
  if (known && known.final && !final) return; // a late interim never replaces the final
  if (!text.trim() && !known) return;
  // when each caption appeared and became final: enough to tell one stretch of speech from the next
  const now = Date.now();
  const at = known ? known.at : now;
  state.segments.set(segmentId, { ...(known || {}), speaker, text, final, at, finalAt: final ? now : null });
  render(segmentId);
}

function countPeople() {
  // people, not the transcribing agent
  const room = state.room;
  const n = room ? 1 + [...room.remoteParticipants.values()].filter((p) => !p.isAgent).length : 0;
  $("people").textContent = `${n} ${n === 1 ? "person" : "people"}`;
}

async function askForToken(name) {
  const response = await fetch("join", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, claim: sessionStorage.getItem(CLAIM_KEY) || "" }),
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: the message below says what happened
  }
  if (!response.ok) throw new Error(body.error || `the join service answered HTTP ${response.status}`);
  sessionStorage.setItem(CLAIM_KEY, body.claim);
  return body;
}

async function startMicrophone(room) {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    setMic("insecure", MIC_MESSAGES.insecure);
    return;
  }
  setMic("asking");
  try {
    await room.localParticipant.setMicrophoneEnabled(true);
    setMic("live");
  } catch (error) {
    const name = error && error.name;
    const kind =
      name === "NotAllowedError" || name === "SecurityError" ? "denied"
      : name === "NotFoundError" || name === "OverconstrainedError" ? "no-device"
      : "error";
    setMic(kind, MIC_MESSAGES[kind]);
  }
}

async function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  $("join-button").disabled = true;
  setStatus("Joining…");
  try {
    const grant = await askForToken(name);
    // singlePeerConnection off: the signalling path (/rtc) and two peer connections that every
    // LiveKit server speaks, the kit's development server included (it has no /rtc/v1).
    const room = new LK.Room({ adaptiveStream: false, dynacast: false, singlePeerConnection: false });
    state.room = room;
    room.registerTextStreamHandler(TOPIC, (reader, who) => {
      onTranscription(reader, who).catch((e) => console.warn("caption dropped:", e));
    });
    room
      .on(LK.RoomEvent.ParticipantConnected, countPeople)
      .on(LK.RoomEvent.ParticipantDisconnected, countPeople)
      .on(LK.RoomEvent.Reconnecting, () => setStatus("Connection lost, reconnecting…", "error"))
      .on(LK.RoomEvent.Reconnected, () => setStatus(`Connected to ${grant.room}.`, "live"))
      .on(LK.RoomEvent.Disconnected, () => {
        setStatus("You have left the room. Reload the page to join again.", "ended");
        setMic("off");
      });
    // autoSubscribe off: attendees sit in one room and hear each other already; playing
    // everyone's audio would echo, and would cost the server a stream per pair of attendees
    await room.connect(grant.url, grant.token, { autoSubscribe: false });
    $("join").hidden = true;
    $("room").hidden = false;
    $("you").textContent = grant.identity;
    document.title = `Live captions · ${grant.identity}`;
    setStatus(`Connected to ${grant.room}. Speak: your words appear below, and everyone else's too.`, "live");
    countPeople();
    await startMicrophone(room);
  } catch (error) {
    state.room = null;
    setStatus(`Could not join: ${(error && error.message) || error}`, "error");
    $("join-button").disabled = false;
  }
}

function main() {
  if (!LK) {
    setStatus("LiveKit's SDK did not load (vendor/livekit-client.umd.js): reload the page.", "error");
    return;
  }
  if (!window.isSecureContext) setMic("insecure", MIC_MESSAGES.insecure);
  $("join").addEventListener("submit", join);
  $("leave").addEventListener("click", () => state.room && state.room.disconnect());
  $("mute").addEventListener("click", async () => {
    const on = state.mic === "muted";
    await state.room.localParticipant.setMicrophoneEnabled(on);
    setMic(on ? "live" : "muted");
  });
  const preset = new URLSearchParams(location.search).get("name");
  if (preset) $("name").value = preset;
}

main();
