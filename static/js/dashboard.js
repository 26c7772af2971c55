// The month picker of the dashboards submits its form when a month is chosen (a static file:
// the Content-Security-Policy refuses inline event handlers).
document.querySelectorAll("input[data-autosubmit]").forEach(function (input) {
  input.addEventListener("change", function () { input.form.submit(); });
});
