// The Telegram Login Widget hands its signed user data to this callback; the page posts it with its CSRF token.
window.modelgateTelegram = function (user) {
  "use strict";
  var form = document.getElementById("telegram-form");
  Object.keys(user).forEach(function (key) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = key;
    input.value = user[key];
    form.appendChild(input);
  });
  form.submit();
};
