/* rookery web page: start the page the server rendered (body[data-page]). */
(function (R) {
  "use strict";

  const { body, setupKeyPanel, setupUploadPage, setupPredictionPage, setupHistoryPage, setupModelPage } = R;

  setupKeyPanel();
  const pages = { index: setupUploadPage, prediction: setupPredictionPage, history: setupHistoryPage, model: setupModelPage };
  if (pages[body.dataset.page]) pages[body.dataset.page]();
})((window.rookery = window.rookery || {}));
