// The pages' one script: passkeys (WebAuthn) over the library's JSON routes. Every element
// with `data-passkey` is hidden until this runs in a browser that has passkeys; the rest of the
// pages work without it. The routes, where to go next and the words of every answer come from
// the element's attributes: no inline script, no framework.
(function () {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function fromBase64url(text) {
    var base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    while (base64.length % 4) {
      base64 += '=';
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = '';
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: fromBase64url(c.id) });
    });
  }

  // The options without their `null` members: WebIDL reads `null` as the string "null".
  function withoutNulls(value) {
    if (Array.isArray(value)) {
      return value.map(withoutNulls);
    }
    if (value && typeof value === 'object') {
      var out = {};
      Object.keys(value).forEach(function (key) {
        if (value[key] !== null) {
          out[key] = withoutNulls(value[key]);
        }
      });
      return out;
    }
    return value;
  }

  // The server's options (base64url strings) as the browser's (buffers).
  function creationOptions(options) {
    var pk = withoutNulls(options);
    return Object.assign({}, pk, {
      challenge: fromBase64url(pk.challenge),
      user: Object.assign({}, pk.user, { id: fromBase64url(pk.user.id) }),
      excludeCredentials: withIds(pk.excludeCredentials),
    });
  }

  function requestOptions(options) {
    var pk = withoutNulls(options);
    return Object.assign({}, pk, {
      challenge: fromBase64url(pk.challenge),
      allowCredentials: withIds(pk.allowCredentials),
    });
  }

  // The browser's credential as the server reads it (`PublicKeyCredential.toJSON()`).
  function credentialJson(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      if (r.getTransports) {
        response.transports = r.getTransports();
      }
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults()
        : {},
    };
  }

  // A refusal of the server, carrying its stable code.
  function Refused(code) {
    this.code = code;
  }

  function post(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (e) {
          data = null;
        }
        if (!res.ok) {
          var detail = data && data.detail;
          var code = typeof detail === 'string' ? detail : detail && detail.code;
          throw new Refused(code || (res.status === 429 ? 'TOO_MANY_REQUESTS' : ''));
        }
        return data;
      });
    });
  }

  function words(element) {
    try {
      return JSON.parse(element.getAttribute('data-words') || '{}');
    } catch (e) {
      return {};
    }
  }

  // The words of a failure: the server's code, or what the browser said.
  function failure(dictionary, error) {
    if (error instanceof Refused) {
      return dictionary[error.code] || dictionary.failed;
    }
    if (error && error.name === 'NotAllowedError') {
      return dictionary.cancelled;
    }
    if (error && error.name === 'InvalidStateError') {
      return dictionary.exists;
    }
    return dictionary.failed;
  }

  function run(element, button, status, ceremony) {
    var dictionary = words(element);
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    status.classList.remove('field-error');
    status.textContent = dictionary.working || '';
    ceremony()
      .then(function (next) {
        if (next) {
          window.location.assign(next);
        }
      })
      .catch(function (error) {
        status.classList.add('field-error');
        status.textContent = failure(dictionary, error);
        button.disabled = false;
        button.removeAttribute('aria-busy');
        button.focus();
      });
  }

  // Sign in without a password, or answer the second step of a sign-in.
  function signIn(element) {
    var button = element.querySelector('button');
    var status = element.querySelector('.passkey-status');
    var token = element.getAttribute('data-mfa-token');
    var body = token ? { mfa_token: token } : {};
    button.addEventListener('click', function () {
      run(element, button, status, function () {
        return post(element.getAttribute('data-start'), body)
          .then(function (options) {
            return navigator.credentials
              .get({ publicKey: requestOptions(options.publicKey) })
              .then(function (credential) {
                var finish = Object.assign({}, body, {
                  challenge_id: options.challenge_id,
                  credential: credentialJson(credential),
                });
                return post(element.getAttribute('data-finish'), finish);
              });
          })
          .then(function () {
            return element.getAttribute('data-next');
          });
      });
    });
  }

  // Recovery codes given with a first second factor: shown this once, in the page.
  function showCodes(codes) {
    var box = document.getElementById('passkey-codes');
    var list = box.querySelector('ol');
    codes.forEach(function (code) {
      var item = document.createElement('li');
      var text = document.createElement('code');
      text.textContent = code;
      item.appendChild(text);
      list.appendChild(item);
    });
    box.hidden = false;
    box.focus();
  }

  function register(form) {
    var button = form.querySelector('button[type=submit]');
    var status = form.querySelector('.passkey-status');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var password = form.querySelector('input[name=current_password]');
      var name = form.querySelector('input[name=name]');
      var start = password && password.value ? { current_password: password.value } : {};
      run(form, button, status, function () {
        return post(form.getAttribute('data-start'), start)
          .then(function (options) {
            return navigator.credentials
              .create({ publicKey: creationOptions(options.publicKey) })
              .then(function (credential) {
                var finish = {
                  challenge_id: options.challenge_id,
                  credential: credentialJson(credential),
                };
                if (name && name.value.trim()) {
                  finish.name = name.value.trim();
                }
                return post(form.getAttribute('data-finish'), finish);
              });
          })
          .then(function (created) {
            var codes = created && created.recovery_codes;
            if (Array.isArray(codes) && codes.length) {
              form.hidden = true;
              showCodes(codes);
              return null;
            }
            return form.getAttribute('data-next');
          });
      });
    });
  }

  function start() {
    document.querySelectorAll('[data-passkey-nojs]').forEach(function (note) {
      note.hidden = true;
    });
    document.querySelectorAll('[data-passkey]').forEach(function (element) {
      if (element.getAttribute('data-passkey') === 'register') {
        register(element);
      } else {
        signIn(element);
      }
      element.hidden = false;
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
