// The Agent Studio call page: joins an embedded VoIP call over WHIP and follows it live.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const callId = location.pathname.split("/").filter(Boolean).pop();
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const whipUrl = `/rtc/calls/${callId}/whip`;
  const auth = { Authorization: `Bearer ${token}` };
  const FINAL = new Set(["completed", "failed", "disconnected", "timeout"]);
  // Milestones in ms since navigation start, for tests and for curious users.
  const timings = {};
  const mark = (name) => { if (!(name in timings)) timings[name] = Math.round(performance.now()); };
  const page = { timings, status: null, endReason: null, pc: null, sessionUrl: null };
  window.callPage = page;

  let mic = null;
  let ended = false;

  function show(status, detail) {
    const el = $("status");
    el.dataset.status = FINAL.has(status) ? "ended" : status;
    el.textContent = FINAL.has(status) ? "ended" : status;
    if (detail !== undefined) $("detail").textContent = detail;
  }

  function fail(message) {
    show("error", message);
    finish();
  }

  function finish() {
    ended = true;
    $("mute").disabled = true;
    $("hangup").disabled = true;
    if (mic) mic.getTracks().forEach((t) => t.stop());
    if (page.pc) page.pc.close();
  }

  function onStatus(data) {
    page.status = data.status;
    page.endReason = data.end_reason;
    if (data.status === "active") mark("active");
    if (data.current_agent) {
      $("agent").hidden = false;
      $("agent").textContent = `Talking with ${data.current_agent}`;
    }
    if (FINAL.has(data.status)) {
      $("agent").hidden = true;
      show(data.status, `Call ${data.status}${data.end_reason ? ` (${data.end_reason})` : ""}`);
      finish();
    } else {
      const words = { pending: "Waiting to connect…", connecting: "Connecting…", active: "Connected" };
      show(data.status, words[data.status] || data.status);
    }
  }

  function onTranscript(entry) {
    const li = document.createElement("li");
    li.className = entry.role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = entry.role === "assistant" ? entry.agent_name || "agent" : entry.role;
    li.append(who, document.createTextNode(entry.content));
    const list = $("transcript");
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  // EventSource cannot send a header, so the stream is read with fetch: the token stays out of URLs.
  async function follow() {
    while (!ended) {
      try {
        const res = await fetch(`/rtc/calls/${callId}/events`, { headers: auth, cache: "no-store" });
        if (!res.ok) {
          if (res.status === 401 || res.status === 404) return;
          throw new Error(`events: HTTP ${res.status}`);
        }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
        if (FINAL.has(page.status)) return;
      } catch (err) {
        console.warn(err);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  function dispatch(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (name === "status") onStatus(payload);
    else if (name === "transcript") onTranscript(payload);
  }

  async function join() {
    show("connecting", "Asking for the microphone…");
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      return fail(`Microphone unavailable: ${err.message || err.name}`);
    }
    mark("microphone");
    const pc = new RTCPeerConnection({ iceServers: [] });
    page.pc = pc;
    const track = mic.getAudioTracks()[0];
    pc.addTransceiver(track, { direction: "sendrecv", streams: [mic] });
    pc.ontrack = (e) => {
      $("remote").srcObject = e.streams[0] || new MediaStream([e.track]);
      mark("track");
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") mark("connected");
      if (pc.connectionState === "failed" && !ended) fail("The connection failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
    mark("gathered");
    const res = await fetch(whipUrl, {
      method: "POST",
      body: pc.localDescription.sdp,
      headers: { ...auth, "Content-Type": "application/sdp" },
    });
    if (res.status !== 201) {
      let reason = `HTTP ${res.status}`;
      try { reason = (await res.json()).detail || reason; } catch (_) { /* not JSON */ }
      return fail(`Could not join the call: ${reason}`);
    }
    // Same server: keep the path only, so a public URL behind a proxy still resolves here.
    page.sessionUrl = new URL(res.headers.get("Location"), location.href).pathname;
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    mark("answered");
    $("mute").disabled = false;
    $("hangup").disabled = false;
    $("mute").onclick = () => {
      track.enabled = !track.enabled;
      $("mute").setAttribute("aria-pressed", String(!track.enabled));
      $("mute").textContent = track.enabled ? "Mute" : "Unmute";
    };
  }

  async function hangUp() {
    $("hangup").disabled = true;
    if (page.sessionUrl) {
      try {
        await fetch(page.sessionUrl, { method: "DELETE", headers: auth });
      } catch (err) {
        console.warn(err);
      }
    }
    mark("hungup");
    if (page.pc) page.pc.close();
    if (mic) mic.getTracks().forEach((t) => t.stop());
  }

  if (!token || !callId) {
    show("error", "This link has no call token: open the full link you were given.");
    return;
  }
  history.replaceState(null, "", location.pathname); // the token leaves the address bar
  $("hangup").onclick = hangUp;
  follow();
  join().catch((err) => fail(`Could not join the call: ${err.message || err}`));
})();
