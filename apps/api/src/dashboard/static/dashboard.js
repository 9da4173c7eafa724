// The planforge dashboard: plain browser JavaScript over the REST API (no build step, no CDN).
// The API key stays in this browser (localStorage) and goes in the Authorization header;
// live progress reads the SSE endpoint through fetch, which can send that header.
(function () {
  'use strict';

  var KEY_STORE = 'planforge.apiKey';
  var state = { key: localStorage.getItem(KEY_STORE) || '', model: null, streams: {}, builds: [] };
  var TERMINAL = ['succeeded', 'partial', 'failed', 'cancelled'];

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'onclick') node.addEventListener('click', attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c !== null && c !== undefined) node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return node;
  }
  function table(headers, rows) {
    return el('table', {}, [
      el('thead', {}, [el('tr', {}, headers.map(function (h) { return el('th', { text: h }); }))]),
      el('tbody', {}, rows),
    ]);
  }
  function status(text) { return el('span', { class: 'status s-' + text, text: text }); }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '-';
    var units = ['B', 'KiB', 'MiB', 'GiB']; var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }
  function fmtTime(iso) { return iso ? new Date(iso).toLocaleString() : '-'; }
  function flash(message, isError) {
    var f = $('flash');
    f.textContent = message; f.hidden = false; f.className = isError ? 'error' : '';
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { f.hidden = true; }, isError ? 10000 : 4000);
  }

  function api(path, options) {
    options = options || {};
    var headers = Object.assign({}, options.headers || {});
    if (state.key) headers.authorization = 'Bearer ' + state.key;
    return fetch(path, Object.assign({}, options, { headers: headers })).then(function (res) {
      if (options.raw) return res;
      return res.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
        if (!res.ok) {
          var err = new Error((body && body.message) || ('HTTP ' + res.status));
          err.status = res.status; err.body = body;
          throw err;
        }
        return body;
      });
    });
  }
  function report(err) {
    if (err && (err.status === 401 || err.status === 403)) flash((err.status === 401 ? 'Enter a valid API key. ' : 'Your key lacks the role: ') + err.message, true);
    else flash(String(err && err.message || err), true);
  }

  // ---- views
  function show(view) {
    Array.prototype.forEach.call(document.querySelectorAll('nav button'), function (b) { b.classList.toggle('active', b.dataset.view === view); });
    Array.prototype.forEach.call(document.querySelectorAll('.view'), function (s) { s.hidden = s.id !== 'view-' + view; });
    if (view === 'builds') loadBuilds();
    if (view === 'models') loadModels();
    if (view === 'workers') loadWorkers();
  }
  Array.prototype.forEach.call(document.querySelectorAll('nav button'), function (b) {
    b.addEventListener('click', function () { show(b.dataset.view); });
  });

  // ---- builds, with live progress per target
  function progressRow(t) {
    var pct = Math.max(0, Math.min(100, Math.round(t.percent !== undefined ? t.percent : t.progress || 0)));
    var cls = 'bar' + (t.status === 'succeeded' ? ' done' : (t.status === 'failed' || t.status === 'cancelled') ? ' failed' : '');
    var where = t.workerId ? ' on ' + t.workerId + (t.gpu ? ' (' + t.gpu + ')' : '') : '';
    var err = t.error && t.error.code ? ' ' + t.error.code : '';
    var fill = el('span');
    fill.style.width = pct + '%'; // CSSOM, not a style attribute: allowed by the page's CSP
    return el('div', { class: 'target-row', 'data-target': t.target }, [
      el('span', { class: 'mono', text: t.target }),
      el('div', { class: cls, role: 'progressbar', 'aria-valuenow': String(pct), 'aria-label': t.target }, [fill]),
      el('span', { class: 'muted', text: pct + '% ' + t.status + (t.stage ? ' · ' + t.stage : '') + where + err }),
    ]);
  }
  function buildCard(b) {
    var targets = el('div', { class: 'targets' }, (b.targetStates || b.targets.map(function (t) { return { target: t, status: b.status, progress: TERMINAL.indexOf(b.status) >= 0 && b.status === 'succeeded' ? 100 : 0 }; })).map(progressRow));
    var actions = [];
    if (TERMINAL.indexOf(b.status) < 0) {
      actions.push(el('button', { class: 'danger small', text: 'Cancel', onclick: function () {
        if (!confirm('Cancel build ' + b.buildId + '?')) return;
        api('/v1/builds/' + b.buildId, { method: 'DELETE', headers: { 'x-cancel-reason': 'cancelled from the dashboard' } }).then(function () { flash('Build cancelled'); loadBuilds(); }, report);
      } }));
    }
    return el('tr', { 'data-build': b.buildId }, [
      el('td', {}, [el('div', { text: b.model + ' v' + b.version }), el('div', { class: 'mono muted', text: b.buildId })]),
      el('td', {}, [status(b.status), el('div', { class: 'muted', text: b.priority ? 'priority ' + b.priority : '' })]),
      el('td', {}, [targets]),
      el('td', { class: 'muted', text: fmtTime(b.createdAt) }),
      el('td', {}, actions),
    ]);
  }
  function loadBuilds() {
    if (!state.key) return;
    api('/v1/builds?limit=25').then(function (res) {
      state.builds = res.builds;
      $('builds').textContent = '';
      if (!res.builds.length) { $('builds').appendChild(el('p', { class: 'muted', text: 'No builds yet.' })); return; }
      $('builds').appendChild(table(['Build', 'Status', 'Targets', 'Submitted', ''], res.builds.map(buildCard)));
      res.builds.forEach(function (b) { if (TERMINAL.indexOf(b.status) < 0) watch(b.buildId); else fillTargets(b.buildId); });
    }, report);
  }
  /** Finished builds: their final per-target state, once. */
  function fillTargets(buildId) {
    api('/v1/builds/' + buildId).then(function (b) { b.targets.forEach(function (t) { updateTarget(buildId, t); }); }, function () {});
  }
  function updateTarget(buildId, t) {
    var row = document.querySelector('tr[data-build="' + buildId + '"]');
    if (!row) return;
    var old = row.querySelector('.target-row[data-target="' + t.target + '"]');
    var fresh = progressRow(t);
    if (old) old.replaceWith(fresh); else row.querySelector('.targets').appendChild(fresh);
  }
  function updateStatus(buildId, s) {
    var row = document.querySelector('tr[data-build="' + buildId + '"]');
    if (!row) return;
    var cell = row.children[1];
    cell.replaceChild(status(s), cell.firstChild);
    if (TERMINAL.indexOf(s) >= 0) row.children[4].textContent = '';
  }
  /** SSE over fetch (EventSource cannot send the API key). */
  function watch(buildId) {
    if (state.streams[buildId]) return;
    var controller = new AbortController();
    state.streams[buildId] = controller;
    api('/v1/builds/' + buildId + '/events', { raw: true, headers: { accept: 'text/event-stream' }, signal: controller.signal }).then(function (res) {
      if (!res.ok || !res.body) throw new Error('events: HTTP ' + res.status);
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = '';
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { delete state.streams[buildId]; return; }
          buffer += decoder.decode(chunk.value, { stream: true });
          var idx;
          while ((idx = buffer.indexOf('\n\n')) >= 0) {
            var block = buffer.slice(0, idx); buffer = buffer.slice(idx + 2);
            var event = 'message'; var data = [];
            block.split('\n').forEach(function (line) {
              if (line.indexOf('event: ') === 0) event = line.slice(7);
              else if (line.indexOf('data: ') === 0) data.push(line.slice(6));
            });
            if (!data.length) continue;
            var payload = JSON.parse(data.join('\n'));
            if (event === 'snapshot') { payload.targets.forEach(function (t) { updateTarget(buildId, t); }); updateStatus(buildId, payload.status); }
            else if (event === 'target') updateTarget(buildId, payload);
            else if (event === 'build') updateStatus(buildId, payload.status);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (err) { delete state.streams[buildId]; if (err.name !== 'AbortError') report(err); });
  }
  $('refresh-builds').addEventListener('click', loadBuilds);

  $('submit-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var file = $('submit-file').files[0];
    if (!file) return;
    var name = $('submit-name').value.trim() || file.name.replace(/\.onnx$/i, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
    var spec = { model: name, targets: $('submit-targets').value.split(',').map(function (s) { return s.trim(); }).filter(Boolean), precision: $('submit-precision').value, priority: $('submit-priority').value };
    var profiles = $('submit-profiles').value.trim();
    if (profiles) {
      try { spec.profiles = JSON.parse(profiles); } catch (err) { flash('Profiles: not valid JSON: ' + err.message, true); return; }
    }
    var form = new FormData();
    form.append('spec', JSON.stringify(spec));
    form.append('model', file, file.name);
    $('submit-button').disabled = true;
    api('/v1/builds', { method: 'POST', body: form }).then(function (res) {
      flash('Build ' + res.buildId + ' queued: ' + res.model + ' v' + res.version);
      loadBuilds();
    }, report).then(function () { $('submit-button').disabled = false; });
  });

  // ---- models, versions with their plans, channels with history
  function loadModels() {
    if (!state.key) return;
    api('/v1/models').then(function (res) {
      $('models').textContent = '';
      if (!res.models.length) { $('models').appendChild(el('p', { class: 'muted', text: 'No models yet.' })); return; }
      $('models').appendChild(table(['Model', 'Latest', 'Versions', 'Created'], res.models.map(function (m) {
        return el('tr', { class: 'clickable', 'data-model': m.name, onclick: function () { openModel(m.name); } }, [
          el('td', { text: m.name }), el('td', { text: m.latestVersion === null ? '-' : 'v' + m.latestVersion }), el('td', { text: String(m.versionCount) }), el('td', { class: 'muted', text: fmtTime(m.createdAt) }),
        ]);
      })));
      if (state.model) openModel(state.model);
    }, report);
  }
  function planCells(v, plans) {
    return v.targets.map(function (t) {
      var p = plans[t];
      if (!p) return el('div', { class: 'muted mono', text: t + ': no plan' });
      var ver = p.verification || {};
      var accuracy = ver.top1 !== undefined && ver.top1 !== null ? 'top-1 ' + (ver.top1 * 100).toFixed(1) + '%' : ver.maxAbs !== undefined ? 'max abs ' + Number(ver.maxAbs).toExponential(2) : 'unverified';
      var latency = p.profile && (p.profile.p99Ms || p.profile.latencyP99Ms) ? 'p99 ' + (p.profile.p99Ms || p.profile.latencyP99Ms) + ' ms' : p.buildMs !== null && p.buildMs !== undefined ? 'built in ' + (p.buildMs / 1000).toFixed(1) + ' s' : '';
      return el('div', { class: 'mono plan', 'data-target': t }, [t + ': ' + fmtBytes(p.size) + ' · ' + p.precision + ' · ' + (p.tuned ? 'tuned' : 'untuned') + ' · ' + accuracy + (latency ? ' · ' + latency : '')]);
    });
  }
  function openModel(name) {
    state.model = name;
    $('model-detail').hidden = false;
    $('model-title').textContent = name;
    api('/v1/models/' + encodeURIComponent(name) + '/versions').then(function (res) {
      $('versions').textContent = '';
      var rows = res.versions.slice().reverse().map(function (v) {
        var plansCell = el('td', { class: 'plans' }, [el('span', { class: 'muted', text: 'loading…' })]);
        var row = el('tr', { 'data-version': String(v.version) }, [
          el('td', { text: 'v' + v.version }), el('td', {}, [status(v.status)]), el('td', { class: 'mono', text: (v.spec && v.spec.precision) || '' }), plansCell,
          el('td', { class: 'muted', text: fmtTime(v.createdAt) }),
        ]);
        var links = (v.links && v.links.plans) || null;
        var fetchPlans = links ? Promise.resolve(links) : api('/v1/models/' + encodeURIComponent(name) + '/versions/' + v.version).then(function (d) { return (d.links && d.links.plans) || {}; });
        fetchPlans.then(function (l) {
          return Promise.all(Object.keys(l).map(function (t) { return api(new URL(l[t]).pathname).then(function (p) { return [t, p]; }, function () { return [t, null]; }); }));
        }).then(function (pairs) {
          var plans = {}; pairs.forEach(function (pair) { plans[pair[0]] = pair[1]; });
          plansCell.textContent = '';
          planCells(v, plans).forEach(function (c) { plansCell.appendChild(c); });
        }, function () { plansCell.textContent = '-'; });
        return row;
      });
      $('versions').appendChild(table(['Version', 'Status', 'Precision', 'Plans per target (size · precision · tuning · accuracy · latency)', 'Created'], rows));
    }, report);
    loadChannels(name);
  }
  function loadChannels(name) {
    api('/v1/models/' + encodeURIComponent(name) + '/channels').then(function (res) {
      $('channels').textContent = '';
      if (!res.channels.length) { $('channels').appendChild(el('p', { class: 'muted', text: 'No channels yet: promote a version.' })); return; }
      res.channels.forEach(function (c) {
        api('/v1/models/' + encodeURIComponent(name) + '/channels/' + encodeURIComponent(c.channel) + '?limit=20').then(function (full) {
          var box = el('div', { class: 'channel', 'data-channel': c.channel }, [
            el('h3', {}, [c.channel + ' ', el('button', { class: 'danger small', 'data-action': 'rollback', text: 'Roll back…', onclick: function () { askRollback(name, c.channel, full); } })]),
            table(['Target', 'Version', 'Precision', 'Size', 'Since'], full.pointers.map(function (p) {
              return el('tr', { 'data-target': p.target }, [el('td', { class: 'mono', text: p.target }), el('td', { class: 'pointer-version', text: 'v' + p.version }), el('td', { text: p.precision }), el('td', { text: fmtBytes(p.size) }), el('td', { class: 'muted', text: fmtTime(p.updatedAt) })]);
            })),
            el('h3', { text: 'History' }),
            table(['When', 'Target', 'Action', 'Change', 'By', 'Reason'], (full.history || []).map(function (h) {
              return el('tr', { class: 'history' }, [el('td', { class: 'muted', text: fmtTime(h.at) }), el('td', { class: 'mono', text: h.target }), el('td', { text: h.action + (h.forced ? ' (forced)' : '') }),
                el('td', { text: (h.from ? 'v' + h.from : '-') + ' → v' + h.to }), el('td', { text: h.actor }), el('td', { text: h.reason || '' })]);
            })),
          ]);
          box.insertBefore(rolloutPanel(name, c.channel), box.children[2]);
          $('channels').appendChild(box);
        }, report);
      });
    }, report);
  }
  // ---- a channel's rollout (state, canary share, watch window, checks vs limits, decision), polled while shown
  var ROLLOUT_POLL_MS = 5000;
  function pct(fraction, signed) { return (signed && fraction > 0 ? '+' : '') + Number((fraction * 100).toFixed(2)) + '%'; }
  function rolloutPanel(model, channel) {
    var node = el('div', { class: 'rollout', 'data-rollout': channel }, [el('h3', { text: 'Rollout' }), el('p', { class: 'muted', text: 'loading…' })]);
    var url = '/v1/models/' + encodeURIComponent(model) + '/channels/' + encodeURIComponent(channel) + '/rollout';
    function poll(first) {
      // The panel leaves the page when another model is opened or the channels reload: its polling ends with it.
      if (!first && !node.isConnected) return;
      if (!first && $('view-models').hidden) { setTimeout(poll, ROLLOUT_POLL_MS); return; }
      api(url).then(function (res) { renderRollout(node, res.rollout); }, function (err) {
        node.lastChild.textContent = 'Rollout unavailable: ' + (err && err.message || err);
      }).then(function () { setTimeout(poll, ROLLOUT_POLL_MS); });
    }
    poll(true);
    return node;
  }
  function renderRollout(node, r) {
    node.textContent = '';
    node.appendChild(el('h3', { text: 'Rollout' }));
    if (!r) { node.appendChild(el('p', { class: 'muted rollout-none', text: 'No rollout on this channel (a promotion is watched once the channel has a policy or asks for a canary).' })); return; }
    var from = Object.keys(r.fromVersions || {}).map(function (t) { return t + ' v' + r.fromVersions[t]; }).join(', ');
    node.appendChild(el('p', { class: 'rollout-summary' }, [
      'v' + r.version + (from ? ' (from ' + from + ') ' : ' '),
      el('span', { class: 'status rollout-state s-' + r.state, text: r.state }),
      ' · ', el('span', { class: 'rollout-canary', text: r.canary ? 'canary ' + r.canary.percent + '% of devices' : 'every device' }),
      ' · ', el('span', { class: 'rollout-window', text: r.state === 'watching' ? r.windowRemainingSeconds + ' s of watch window left' : 'decided ' + fmtTime(r.decidedAt) }),
    ]));
    // Watching: the live evaluation {scopes, decision}; decided: {action, scopes} with the reason on the rollout.
    var ev = r.evaluation || {};
    var rows = [];
    (ev.scopes || []).forEach(function (s) {
      (s.checks || []).forEach(function (k) {
        var relative = k.name !== 'error_rate';
        rows.push(el('tr', { class: 'rollout-check', 'data-check': k.name, 'data-scope': s.scope }, [
          el('td', { class: 'mono', text: s.scope }), el('td', { class: 'mono', text: k.name }),
          el('td', { text: k.value === null || k.value === undefined ? '-' : pct(k.value, relative) }), el('td', { text: pct(k.limit, relative) }),
          el('td', {}, [status(k.status)]), el('td', { class: 'muted', text: k.detail || '' }),
        ]));
      });
    });
    if (rows.length) node.appendChild(table(['Scope', 'Check', 'Value', 'Limit', 'Status', 'Detail'], rows));
    var action = (ev.decision && ev.decision.action) || ev.action;
    var reason = (ev.decision && ev.decision.reason) || r.reason;
    node.appendChild(el('p', { class: 'rollout-decision', text: 'Decision: ' + ([action, reason].filter(Boolean).join(': ') || '-') }));
  }
  function askRollback(model, channel, full) {
    var dialog = $('rollback-dialog');
    $('rollback-title').textContent = 'Roll back ' + model + ' / ' + channel;
    $('rollback-text').textContent = 'Serving now: ' + full.pointers.map(function (p) { return p.target + ' v' + p.version; }).join(', ') + '. Each target goes back to the version it served before.';
    $('rollback-reason').value = '';
    $('rollback-confirm').checked = false;
    dialog.returnValue = '';
    dialog.onclose = function () {
      if (dialog.returnValue !== 'confirm') return;
      var reason = $('rollback-reason').value.trim();
      api('/v1/models/' + encodeURIComponent(model) + '/channels/' + encodeURIComponent(channel) + '/rollback', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: reason }),
      }).then(function (res) {
        flash('Rolled back ' + channel + ': ' + res.changes.map(function (c) { return c.target + ' v' + c.from + ' → v' + c.to; }).join(', '));
        openModel(model);
      }, report);
    };
    dialog.showModal();
  }
  $('promote-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var model = state.model;
    var channel = $('promote-channel').value.trim();
    var version = Number($('promote-version').value);
    if (!confirm('Promote ' + model + ' v' + version + ' to ' + channel + '?')) return;
    api('/v1/models/' + encodeURIComponent(model) + '/channels/' + encodeURIComponent(channel) + '/promote', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: version, reason: 'promoted from the dashboard' }),
    }).then(function (res) {
      flash('Promoted ' + model + ' v' + version + ' to ' + channel + (res.changes.length ? '' : ' (already there)'));
      openModel(model);
    }, report);
  });

  // ---- workers and pools
  function loadWorkers() {
    if (!state.key) return;
    api('/v1/pools').then(function (res) {
      $('pools').textContent = '';
      $('pools').appendChild(table(['Target', 'Family', 'Alive', 'Busy', 'Lost', 'Waiting', 'Running', 'Oldest wait'], res.pools.map(function (p) {
        return el('tr', { 'data-pool': p.target }, [el('td', { class: 'mono', text: p.target }), el('td', { text: p.family }), el('td', { text: String(p.workers.alive) }), el('td', { text: String(p.workers.busy) }),
          el('td', { text: String(p.workers.lost) }), el('td', { text: String(p.queue.waiting) }), el('td', { text: String(p.queue.active) }),
          el('td', { text: p.queue.oldestWaitingSeconds === null ? '-' : Math.round(p.queue.oldestWaitingSeconds) + ' s' })]);
      })));
    }, report);
    api('/v1/workers').then(function (res) {
      $('workers').textContent = '';
      if (!res.workers.length) { $('workers').appendChild(el('p', { class: 'muted', text: 'No worker has registered.' })); return; }
      $('workers').appendChild(table(['Worker', 'State', 'Host', 'Pool', 'GPU', 'SM', 'Memory', 'Driver', 'Optimizer', 'Current job', 'Last seen'], res.workers.map(function (w) {
        return el('tr', { 'data-worker': w.workerId }, [el('td', { class: 'mono', text: w.workerId }), el('td', {}, [status(w.state)]), el('td', { text: w.host }), el('td', { class: 'mono', text: w.targets.join(', ') }),
          el('td', { text: w.gpu }), el('td', { text: w.sm || '-' }), el('td', { text: w.memoryMiB ? w.memoryMiB + ' MiB' : '-' }), el('td', { text: w.driver || '-' }), el('td', { class: 'mono', text: w.optimizerVersion }),
          el('td', { class: 'mono', text: w.currentJobs.join(', ') || 'idle' }), el('td', { class: 'muted', text: w.lastSeenSecondsAgo + ' s ago' })]);
      })));
    }, report);
  }

  // ---- auth
  $('api-key').value = state.key;
  $('auth').addEventListener('submit', function (e) {
    e.preventDefault();
    state.key = $('api-key').value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    api('/v1/models').then(function () { $('who').textContent = 'connected'; show('builds'); }, report);
  });
  if (state.key) { $('who').textContent = 'connected'; show('builds'); }
  else flash('Enter an API key to begin.');
  setInterval(function () {
    if (!state.key || document.hidden) return;
    if (!$('view-workers').hidden) loadWorkers();
  }, 5000);
})();
