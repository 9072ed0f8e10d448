/* The stop page's player and timeline (patrolkit supervisor workspace).
 *
 * Each <section class="footage"> names its playlist (data-playlist: HLS over the stored fMP4 segments) and
 * its window on the wall clock (data-start, data-end: ms since the epoch; data-tz: the jurisdiction's zone).
 * hls.js (vendored, /static/vendor/hls.js/) plays the playlist as one stream; this file
 *  - positions the timeline's stretches (segments, gaps, holes) and event marks by wall-clock time,
 *  - shows the wall-clock time of the frame on screen, in local time with its offset,
 *  - seeks by wall-clock time: clicking an event or a point of the timeline plays from that moment.
 * The player has no native controls: ours sit below the picture, so nothing covers the burnt-in overlay.
 */
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function localText(ms, zone) {
    if (ms === null || ms === undefined || isNaN(ms)) { return "—"; }
    var parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "longOffset"
    }).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    var offset = (parts.timeZoneName || "GMT").replace("GMT", "") || "+00:00";
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" +
      parts.second + " " + offset;
  }

  function setup(section) {
    var start = Number(section.dataset.start), end = Number(section.dataset.end), zone = section.dataset.tz;
    var span = Math.max(1, end - start);
    var track = section.querySelector(".tl-track");
    var head = section.querySelector(".tl-head");
    var video = section.querySelector("video.player-video");
    var clock = section.querySelector(".clock");
    var status = section.querySelector(".player-status");
    var playButton = section.querySelector("button.play");

    function pct(ms) { return Math.min(100, Math.max(0, (ms - start) / span * 100)); }

    track.querySelectorAll("[data-start][data-end]").forEach(function (el) {
      var a = pct(Number(el.dataset.start)), b = pct(Number(el.dataset.end));
      el.style.left = a + "%";
      el.style.width = Math.max(0.4, b - a) + "%";
    });
    track.querySelectorAll("[data-at]").forEach(function (el) { el.style.left = pct(Number(el.dataset.at)) + "%"; });

    if (!video) { return; }
    var player = { section: section, video: video, hls: null, fragments: [], wall: null };
    window.patrolkitPlayers = window.patrolkitPlayers || [];
    window.patrolkitPlayers.push(player);

    function say(text) { if (status) { status.textContent = text; } }

    function wallNow() {
      if (player.hls && player.hls.playingDate) { return player.hls.playingDate.getTime(); }
      var t = video.currentTime, f = fragmentAtMedia(t);
      return f ? f.programDateTime + (t - f.start) * 1000 : null;
    }

    function fragmentAtMedia(t) {
      var list = player.fragments;
      for (var i = list.length - 1; i >= 0; i--) { if (list[i].start <= t + 1e-3) { return list[i]; } }
      return list.length ? list[0] : null;
    }

    function mediaTimeOf(ms) {
      var list = player.fragments;
      for (var i = 0; i < list.length; i++) {
        var f = list[i], from = f.programDateTime, to = from + f.duration * 1000;
        if (ms < from) { return f.start; }          // in a gap or before the first: the next recorded moment
        if (ms < to) { return f.start + (ms - from) / 1000; }
      }
      return list.length ? list[list.length - 1].start + list[list.length - 1].duration - 0.05 : 0;
    }

    function seekWall(ms) {
      if (!player.fragments.length) { return; }
      video.currentTime = mediaTimeOf(ms);
      var playing = video.play();
      if (playing && playing.catch) { playing.catch(function () {}); }
    }
    player.seekWall = seekWall;

    function show() {
      var ms = wallNow();
      player.wall = ms;
      section.dataset.wall = ms === null ? "" : String(Math.round(ms));
      if (clock) { clock.textContent = localText(ms, zone); }
      if (head && ms !== null) { head.hidden = false; head.style.left = pct(ms) + "%"; }
    }

    if (!window.Hls || !window.Hls.isSupported()) {
      say("Браузер не умеет Media Source Extensions / this browser cannot play HLS through MSE");
      return;
    }
    var hls = new window.Hls({ enableWorker: false, maxBufferLength: 20, backBufferLength: 30 });
    player.hls = hls;
    hls.on(window.Hls.Events.LEVEL_LOADED, function (_e, data) {
      player.fragments = data.details.fragments.map(function (f) {
        return { start: f.start, duration: f.duration, programDateTime: f.programDateTime };
      });
      if (playButton) { playButton.disabled = false; }
      section.dataset.ready = "1";
      var playing = video.play();
      if (playing && playing.catch) { playing.catch(function () { say("нажмите ▶ / press play"); }); }
    });
    hls.on(window.Hls.Events.ERROR, function (_e, data) {
      if (data.fatal) { say("Ошибка воспроизведения / playback error: " + data.details); }
    });
    hls.loadSource(section.dataset.playlist);
    hls.attachMedia(video);

    video.addEventListener("timeupdate", show);
    video.addEventListener("seeked", show);
    video.addEventListener("playing", function () { say(""); show(); });
    if (playButton) {
      playButton.addEventListener("click", function () {
        if (video.paused) { video.play(); } else { video.pause(); }
      });
      video.addEventListener("play", function () { playButton.textContent = "❚❚ Пауза / Pause"; });
      video.addEventListener("pause", function () { playButton.textContent = "▶ Воспроизвести / Play"; });
    }
    section.querySelectorAll("button.event[data-at], button.tl-mark[data-at]").forEach(function (button) {
      button.addEventListener("click", function (ev) { ev.stopPropagation(); seekWall(Number(button.dataset.at)); });
    });
    track.addEventListener("click", function (ev) {
      var box = track.getBoundingClientRect();
      seekWall(start + (ev.clientX - box.left) / box.width * span);
    });
  }

  function init() { document.querySelectorAll("section.footage").forEach(setup); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
