"""The review site's pages: Jinja2 templates (kept here so they ship with the package), autoescaped because
questions, answers and contexts are untrusted text, and the filters they use. See :mod:`hguard.review.web`."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import HGuardError, install_extra
from ._items import shown_domain

_INSTALL_HINT = f"install the review extra (starlette, uvicorn, jinja2, python-multipart): {install_extra('review')}"


_BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}Review queue{% endblock %} · hguard</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { background: #1d2430; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.2rem; align-items: center; }
header a, header button { color: #fff; text-decoration: none; font: inherit; }
header .brand { font-weight: 700; }
header .right { margin-left: auto; display: flex; gap: .8rem; align-items: center; }
header button { background: none; border: 1px solid #fff6; border-radius: 4px; padding: .1rem .6rem; cursor: pointer; }
main { max-width: 72rem; margin: 1.2rem auto; padding: 0 1.2rem; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
.risk { font-variant-numeric: tabular-nums; font-weight: 600; }
.risk.high { color: #b42318; } .risk.mid { color: #b54708; } .risk.low { color: #067647; } .risk.none { color: #6b7280; }
.banner, .msg { padding: .6rem .9rem; border-radius: 6px; margin: 0 0 1rem; }
.banner { background: #fff4e5; border: 1px solid #f5c27a; }
.msg.ok { background: #e8f6ee; border: 1px solid #8fd1a8; }
.msg.error { background: #fdecec; border: 1px solid #f0a3a3; }
.filters a { margin-right: .6rem; } .filters a.active { font-weight: 700; text-decoration: none; color: #1d2430; }
.text { white-space: pre-wrap; background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: .7rem .9rem;
        margin: 0; font: inherit; overflow-wrap: anywhere; }
.context { max-height: 24rem; overflow: auto; font-family: ui-monospace, monospace; font-size: .85rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.meta dt { color: #6b7280; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
form.verdict { background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: 1rem; display: grid; gap: .8rem; }
form.verdict label { display: grid; gap: .2rem; font-weight: 600; }
input[type=text], input[type=password], textarea { font: inherit; padding: .4rem .5rem; border: 1px solid #c5cbd3; border-radius: 4px; }
textarea { min-height: 4.5rem; }
.buttons { display: flex; gap: .6rem; flex-wrap: wrap; }
button.act { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid transparent; cursor: pointer; color: #fff; }
button.correct { background: #067647; } button.hallucinated { background: #b42318; } button.corrected { background: #1f5fbf; }
button.plain { background: #1d2430; }
.muted { color: #6b7280; } .count { font-variant-numeric: tabular-nums; }
ul.reasons { margin: 0; padding-left: 1.2rem; }
.evaluation { color: #1f5fbf; }
</style>
</head>
<body>
<header>
  <a class="brand" href="/">hguard review</a>
  <a href="/">Pending</a>
  <a href="/decided">Decided</a>
  <span class="right">
  {% if logged_in %}
    <span>signed in</span>
    <form method="post" action="/logout" style="margin:0">
      <input type="hidden" name="csrf_token" value="{{ csrf }}">
      <button type="submit">Log out</button>
    </form>
  {% elif writable %}
    <a href="/login?next={{ (request_path if request_path != '/login' else '/')|urlencode }}">Log in</a>
  {% else %}
    <span>read-only</span>
  {% endif %}
  </span>
</header>
<main>
{% if not writable %}
<p class="banner">Read-only and open: started with --read-only-open and no review token, so any local process
can read this queue and verdicts cannot be recorded. Set {{ token_env }} (16 characters or more) and restart
<code>hguard review serve</code> to record verdicts.</p>
{% endif %}
{% if message %}<p class="msg {{ message_kind }}" role="status" id="message">{{ message }}</p>{% endif %}
{% block content %}{% endblock %}
</main>
</body>
</html>
"""

_FILTERS = """{% macro domain_links(page, counts, domain_param, query) -%}
Domain:
<a href="{{ page }}?{{ query }}" class="{{ 'active' if domain_param is none else '' }}">all</a>
{% for row in counts %}<a href="{{ page }}?domain={{ row.param|urlencode }}{{ '&' ~ query if query else '' }}"
 class="{{ 'active' if domain_param == row.param else '' }}">{{ row.label }}</a>{% endfor %}
{%- endmacro %}
"""

_INDEX = """{% extends "base.html" %}
{% from "filters.html" import domain_links %}
{% block content %}
<h1>Pending review <span class="muted count">({% if filter_said %}{{ shown_pending }} of {{ total_pending }}: {{ filter_said }}{% else %}{{ total_pending }}{% endif %})</span></h1>
<table class="counts" id="counts">
<thead><tr><th>Domain</th><th>Pending</th><th>Decided</th><th>Monitor</th>
{% if has_audit %}<th>Of them an evaluation's (served to no user)</th>{% endif %}</tr></thead>
<tbody>
{% for row in counts %}
<tr><td><a href="/?domain={{ row.param|urlencode }}&amp;order={{ order }}{{ evaluation_query }}">{{ row.label }}</a></td>
<td class="count">{{ row.pending }}</td><td class="count">{{ row.decided }}</td>
<td class="monitor-state">{{ row.state }}</td>
{% if has_audit %}<td class="evaluation-count">{% if row.evaluation %}{{ row.evaluation.pending }} pending, {{ row.evaluation.decided }} decided{% endif %}</td>{% endif %}</tr>
{% else %}
<tr><td colspan="3" class="muted">The queue is empty.</td></tr>
{% endfor %}
</tbody>
</table>
{% if filter_said %}<p class="muted" id="counts-unfiltered">The counts above are unfiltered: of the whole queue.</p>{% endif %}
<p class="filters">
{{ domain_links("/", counts, domain_param, "order=" ~ order ~ evaluation_query) }}
&nbsp; Sort:
<a href="{{ self_url(order='risk') }}" class="{{ 'active' if order == 'risk' else '' }}">highest risk first</a>
<a href="{{ self_url(order='time') }}" class="{{ 'active' if order == 'time' else '' }}">oldest first</a>
{% if has_audit %}&nbsp; Evaluation items (served to no user):
<a href="{{ self_url(evaluation='') }}" class="{{ 'active' if evaluation_param is none else '' }}" id="evaluation-all">all</a>
<a href="{{ self_url(evaluation='exclude') }}" class="{{ 'active' if evaluation_param == 'exclude' else '' }}" id="evaluation-exclude">leave out</a>
<a href="{{ self_url(evaluation='only') }}" class="{{ 'active' if evaluation_param == 'only' else '' }}" id="evaluation-only">only</a>{% endif %}
</p>
<table id="pending">
<thead><tr><th>Risk</th><th>Domain</th><th>Question</th><th>Answer</th><th>Why review</th><th>Time</th></tr></thead>
<tbody>
{% for item in items %}
<tr data-item-id="{{ item.id }}">
<td class="risk {{ item.risk|risk_class }}">{{ item.risk|fmt_risk }}</td>
<td>{{ item.domain|domain_name }}</td>
<td dir="auto"><a href="/items/{{ item.id|urlencode }}">{{ item.question|truncate(140) }}</a></td>
<td dir="auto">{{ item.answer|truncate(140) }}</td>
<td>{% if item.spot_check %}<strong class="spot-check">spot-check</strong> {% endif %}{% if evaluation[item.id] %}<strong class="evaluation">{{ evaluation_mark }}</strong> {% endif %}{{ item.why|truncate(120) }}</td>
<td class="muted">{{ item.time[:19]|replace("T", " ") }}</td>
</tr>
{% else %}
<tr><td colspan="6" class="muted">Nothing is waiting for review{{ " in this domain" if domain_param is not none else "" }}{{ {"only": " among an evaluation's items", "exclude": " but an evaluation's items"}.get(evaluation_param, "") }}.</td></tr>
{% endfor %}
</tbody>
</table>
{% if truncated %}<p class="muted">Showing the first {{ items|length }}.</p>{% endif %}
{% endblock %}
"""

_ITEM = """{% extends "base.html" %}
{% block title %}Item {{ item.id|truncate(24) }}{% endblock %}
{% block content %}
<h1>Review item <span class="muted">{{ item.id }}</span>{% if evaluation %} <strong class="evaluation">{{ evaluation_mark }}</strong>{% endif %}</h1>
<dl class="meta">
<dt>Risk</dt><dd class="risk {{ item.risk|risk_class }}" id="risk">{{ item.risk|fmt_risk }}</dd>
<dt>Domain</dt><dd>{{ item.domain|domain_name }}</dd>
<dt>Kind</dt><dd id="kind">{{ "spot-check of an accepted answer (the user got it)" if item.spot_check else "routed to review" }}</dd>
<dt>Evaluation</dt><dd id="evaluation">{{ evaluation_said }}</dd>
<dt>Decided by the guard</dt><dd>{{ item.time }}</dd>
<dt>Status</dt><dd id="status">{{ item.status }}</dd>
<dt>Model fingerprint</dt><dd>{{ item.model_fingerprint or "(not recorded)" }}</dd>
<dt>Probe</dt><dd>{{ item.probe_id or "(none)" }}</dd>
<dt>Audit record</dt><dd>{{ item.audit_id }}</dd>
</dl>
{% if history %}<h2>Earlier turns of the conversation (from the decision record)</h2>
<div id="history">{% for turn in history %}<p class="muted">{{ turn.role }}</p><pre class="text" dir="auto">{{ turn.content }}</pre>{% endfor %}</div>
{% endif %}<h2>Question</h2>
<pre class="text" id="question" dir="auto">{{ item.question }}</pre>
<h2>Answer</h2>
<pre class="text" id="answer" dir="auto">{{ item.answer }}</pre>
<h2>Why it was sent to review</h2>
{% if item.reasons %}<ul class="reasons" id="reasons">{% for r in item.reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% else %}<p class="muted">No reasons recorded.</p>{% endif %}
<h2>Signals</h2>
{% if item.signals %}
<table id="signals"><thead><tr><th>Signal</th><th>Value</th></tr></thead><tbody>
{% for name, value in item.signals|dictsort %}<tr><td>{{ name }}</td><td>{{ value|fmt_value }}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p class="muted">No signals recorded.</p>{% endif %}
<h2>Retrieved context</h2>
{% if item.context is not none %}<pre class="text context" id="context" dir="auto">{{ item.context }}</pre>
{% else %}<p class="muted">No context was retrieved for this answer.</p>{% endif %}

<h2>Verdict</h2>
{% if item.verdict %}
<dl class="meta" id="verdict">
<dt>Verdict</dt><dd>{{ item.verdict.verdict }}</dd>
<dt>By</dt><dd>{{ item.verdict.reviewer }}</dd>
<dt>At</dt><dd>{{ item.verdict.decided_at }}</dd>
{% if item.verdict.corrected_answer is not none %}<dt>Corrected answer</dt><dd dir="auto">{{ item.verdict.corrected_answer }}</dd>{% endif %}
{% if item.verdict.note %}<dt>Note</dt><dd>{{ item.verdict.note }}</dd>{% endif %}
{% if item.verdict.audit_record_id %}<dt>Audit record</dt><dd>{{ item.verdict.audit_record_id }}</dd>{% endif %}
</dl>
{% elif not writable %}
<p class="muted">Verdicts cannot be recorded in read-only mode.</p>
{% elif not logged_in %}
<p><a href="/login?next={{ request_path|urlencode }}">Log in with the review token</a> to record a verdict.</p>
{% else %}
<form class="verdict" method="post" action="/items/{{ item.id|urlencode }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<label>Your name <input type="text" name="reviewer" value="{{ form.reviewer }}" maxlength="200" required></label>
<label>Note (optional) <textarea name="note" dir="auto">{{ form.note }}</textarea></label>
<div class="buttons">
<button class="act correct" type="submit" name="verdict" value="correct">Correct</button>
<button class="act hallucinated" type="submit" name="verdict" value="hallucinated">Hallucinated</button>
{% if item.context is not none %}<button class="act hallucinated" type="submit" name="verdict" value="not_in_context">The passage does not answer this</button>{% endif %}
</div>
<label>The right answer, when the model's is wrong <textarea name="corrected_answer">{{ form.corrected_answer }}</textarea></label>
<p class="muted">Saving it marks the model's answer hallucinated (it counts in the domain's hallucination rate). For a
right answer you would only word better, choose Correct and put your wording in the note.</p>
<div class="buttons">
<button class="act corrected" type="submit" name="verdict" value="corrected">Wrong: save the right answer</button>
</div>
</form>
{% endif %}
{% endblock %}
"""

_DECIDED = """{% extends "base.html" %}
{% from "filters.html" import domain_links %}
{% block title %}Decided{% endblock %}
{% block content %}
<h1>Decided <span class="muted count">({% if filter_said %}{{ shown_decided }} of {{ total_decided }}: {{ filter_said }}{% if shown_decided > items|length %}, the latest {{ items|length }} shown{% endif %}{% else %}latest {{ items|length }}{% endif %})</span></h1>
<p class="filters">
{{ domain_links("/decided", counts, domain_param, evaluation_query[1:]) }}
{% if has_audit %}&nbsp; Evaluation items (served to no user):
<a href="{{ self_url(evaluation='') }}" class="{{ 'active' if evaluation_param is none else '' }}" id="evaluation-all">all</a>
<a href="{{ self_url(evaluation='exclude') }}" class="{{ 'active' if evaluation_param == 'exclude' else '' }}" id="evaluation-exclude">leave out</a>
<a href="{{ self_url(evaluation='only') }}" class="{{ 'active' if evaluation_param == 'only' else '' }}" id="evaluation-only">only</a>{% endif %}</p>
<table id="decided">
<thead><tr><th>When</th><th>Verdict</th><th>By</th><th>Risk</th><th>Domain</th><th>Question</th></tr></thead>
<tbody>
{% for item in items %}
<tr><td class="muted">{{ item.verdict.decided_at[:19]|replace("T", " ") }}</td><td>{{ item.verdict.verdict }}</td>
<td>{{ item.verdict.reviewer }}</td><td class="risk {{ item.risk|risk_class }}">{{ item.risk|fmt_risk }}</td>
<td>{{ item.domain|domain_name }}</td>
<td>{% if evaluation[item.id] %}<strong class="evaluation">{{ evaluation_mark }}</strong> {% endif %}<a href="/items/{{ item.id|urlencode }}">{{ item.question|truncate(140) }}</a></td></tr>
{% else %}
<tr><td colspan="6" class="muted">No verdicts yet{{ " in this domain" if domain_param is not none else "" }}{{ {"only": " among an evaluation's items", "exclude": " but on an evaluation's items"}.get(evaluation_param, "") }}.</td></tr>
{% endfor %}
</tbody>
</table>
{% endblock %}
"""

_LOGIN = """{% extends "base.html" %}
{% block title %}Log in{% endblock %}
{% block content %}
<h1>Log in</h1>
{% if writable %}
<form class="verdict" method="post" action="/login" style="max-width:28rem">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Review token <input type="password" name="token" autocomplete="current-password" required></label>
<div class="buttons"><button class="act plain" type="submit">Log in</button></div>
</form>
<p class="muted">The token is the value of {{ token_env }} on the machine running the server.</p>
{% endif %}
{% endblock %}
"""

_ERROR = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}<h1>{{ title }}</h1><p><a href="/">Back to the queue</a></p>{% endblock %}
"""

TEMPLATES = {
    "base.html": _BASE,
    "filters.html": _FILTERS,
    "index.html": _INDEX,
    "item.html": _ITEM,
    "decided.html": _DECIDED,
    "login.html": _LOGIN,
    "error.html": _ERROR,
}


def _fmt_risk(risk: float | None) -> str:
    return "unscored" if risk is None else f"{risk:.3f}"


def _risk_class(risk: float | None) -> str:
    if risk is None:
        return "none"
    return "high" if risk >= 0.5 else "mid" if risk >= 0.2 else "low"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if value is None:
        return "(none)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _jinja_env() -> Any:
    try:
        import jinja2
    except ImportError as e:
        raise HGuardError(f"the review web app needs jinja2 ({e}); {_INSTALL_HINT}") from e
    # Autoescape every template whatever its name: all of them render untrusted questions and answers.
    env = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["fmt_risk"] = _fmt_risk
    env.filters["risk_class"] = _risk_class
    env.filters["fmt_value"] = _fmt_value
    env.filters["domain_name"] = lambda d: shown_domain(d, "(none)")
    return env
