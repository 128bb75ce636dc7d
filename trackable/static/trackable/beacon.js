/* django-trackable: send the beacon of a tracked link when it is clicked.
 * Links rendered by {% tracked_link %} carry data-trackable-beacon="<signed beacon URL>"; the click
 * POSTs to it with navigator.sendBeacon (it survives the navigation), then the browser follows href.
 * Nothing is counted on hover, prefetch or page load. */
(function () {
  "use strict";
  function send(url) {
    if (navigator.sendBeacon && navigator.sendBeacon(url)) {
      return;
    }
    if (window.fetch) {
      fetch(url, { method: "POST", keepalive: true, credentials: "same-origin" });
    }
  }
  function onActivate(event) {
    if (event.type === "auxclick" && event.button !== 1) {
      return;
    }
    var link = event.target && event.target.closest ? event.target.closest("a[data-trackable-beacon]") : null;
    if (link) {
      send(link.getAttribute("data-trackable-beacon"));
    }
  }
  document.addEventListener("click", onActivate, true);
  document.addEventListener("auxclick", onActivate, true);
})();
