// The playground: a chat kept in the page, each turn streamed from the relay's session-authenticated route.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) { return; }
  var transcript = document.getElementById("pg-transcript");
  var messages = [];

  function cookie(name) {
    var found = document.cookie.split("; ").find(function (part) { return part.indexOf(name + "=") === 0; });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function bubble(role, text) {
    var item = document.createElement("div");
    item.className = "turn turn-" + role;
    item.textContent = text;
    transcript.appendChild(item);
    return item;
  }

  function request() {
    var system = form.elements.system.value.trim();
    var body = {model: form.elements.model.value, stream: true,
                temperature: parseFloat(form.elements.temperature.value || "0.7"),
                messages: (system ? [{role: "system", content: system}] : []).concat(messages)};
    return fetch(form.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"content-type": "application/json", "x-csrftoken": cookie(form.getAttribute("data-csrf-cookie"))}
    });
  }

  async function send() {
    var text = form.elements.message.value.trim();
    if (!text) { return; }
    messages.push({role: "user", content: text});
    bubble("user", text);
    form.elements.message.value = "";
    var answer = bubble("assistant", "");
    document.getElementById("pg-send").disabled = true;
    try {
      var response = await request();
      if (!response.ok) {
        var failure = await response.json().catch(function () { return {}; });
        throw new Error((failure.error && failure.error.message) || ("HTTP " + response.status));
      }
      var reader = response.body.getReader(), decoder = new TextDecoder(), pending = "", reply = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        pending += decoder.decode(chunk.value, {stream: true});
        var events = pending.split("\n\n");
        pending = events.pop();
        events.forEach(function (event) {
          var data = event.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; })
            .map(function (l) { return l.slice(6); }).join("");
          if (!data || data === "[DONE]") { return; }
          var parsed = JSON.parse(data);
          var delta = parsed.choices && parsed.choices[0] && parsed.choices[0].delta;
          if (delta && delta.content) { reply += delta.content; answer.textContent = reply; }
        });
      }
      messages.push({role: "assistant", content: reply});
    } catch (error) {
      answer.classList.add("turn-error");
      answer.textContent = form.getAttribute("data-error") + " " + error.message;
      messages.pop();
    } finally {
      document.getElementById("pg-send").disabled = false;
    }
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  document.getElementById("pg-clear").addEventListener("click", function () {
    messages = [];
    transcript.textContent = "";
  });
})();
