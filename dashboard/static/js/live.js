// The live stream (/api/live, server-sent events) read with fetch(), because
// EventSource cannot send the Authorization header and tokens stay out of URLs.
export class LiveStream {
  constructor(path, token, { onChange, onState }) {
    this.path = path;
    this.token = token;
    this.onChange = onChange;
    this.onState = onState;
    this.controller = null;
    this.stopped = false;
    this.delay = 1000;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    this.onState("off");
  }

  async loop() {
    while (!this.stopped) {
      this.controller = new AbortController();
      try {
        const response = await fetch(this.path, {
          headers: { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream" },
          signal: this.controller.signal,
          cache: "no-store",
        });
        if (response.status === 401 || response.status === 403) { this.onState("off"); return; }
        if (!response.ok || !response.body) throw new Error(`live: ${response.status}`);
        this.onState("on");
        this.delay = 1000;
        await this.read(response.body.getReader());
      } catch (err) {
        if (!this.stopped) console.warn("live stream interrupted, reconnecting:", err);
      }
      if (this.stopped) return;
      this.onState("retry");
      await new Promise((r) => setTimeout(r, this.delay));
      this.delay = Math.min(this.delay * 2, 15000);
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        this.dispatch(block);
      }
    }
  }

  dispatch(block) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (event === "change") {
      try { this.onChange(new Set(JSON.parse(data).changed)); } catch { this.onChange(new Set(["events", "metrics", "gateways"])); }
    } else if (event === "hello") {
      // A (re)connect may have missed changes: refresh everything once.
      this.onChange(new Set(["events", "metrics", "gateways"]));
    }
  }
}
