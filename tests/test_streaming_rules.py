"""The adapters' shared reading of a prompt (hguard.streaming): when a prompt refers to context it was given."""

from __future__ import annotations

import pytest

from hguard.streaming import holds_material, mentions_context, unread_context


@pytest.mark.parametrize("prompt", [
    "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to answer",
    "Context information is below.\n---------------------\nx\n---------------------\nGiven the context information",
    "Context: Canberra is the capital.\nQuestion: what is the capital of australia ?",
    "Answer using the documents.", "Based on the passage, who wrote it?", "Read the passage below and answer.",
    "According to the context, when was it built?",
    # tags, labels and introductions seen in users' own RAG prompts (new-user trial)
    "<context>\nOur Swiss office is in Zurich.\n</context>\n\nWhat is the capital of Switzerland?",
    "<documents><document index=\"1\">Leave is 25 days.</document></documents>\nHow much leave?",
    "Here is some information:\nLeave is 25 days.\n\nHow much leave do I get?",
    "Sources:\n[1] Leave is 25 days.\nQuestion: how much leave?", "Excerpts: Leave is 25 days. How much leave?",
    "Relevant policy sections:\n3.1 Leave is 25 days.\n\nHow much leave?", "Reference material: x\nQ: y",
    "Knowledge base: x\nQ: y", "## Background:\nx\n\nQ: y", "Kontext: Urlaub sind 25 Tage.\nFrage: Wie viel Urlaub?",
    "Contexte : x\nQuestion : y", "Here are the relevant documents.\nx\ny?",
    # shapes a verification trial pasted passages in
    "### Context\nLeave is 25 days.\n\n### Question\nHow many days?", "Document 1: Leave is 25 days.\n\nHow many days?",
    "Passage [1]: Leave is 25 days.\nHow many days?", "Here's some information: Leave is 25 days. How many days?",
    "Text: Leave is 25 days.\nQuestion: How many days?", "Article:\nLeave is 25 days.\n\nHow many days?",
    "Excerpt from the handbook:\nLeave is 25 days.\n\nHow many days?", "<doc>Leave is 25 days.</doc>\nHow many days?",
    "[CONTEXT]\nLeave is 25 days.\n[/CONTEXT]\nHow many days?",
    '"""Leave is 25 days."""\nBased on the text above, how many days?', "Read this: Leave is 25 days.\nHow many days?",
    "Given this policy: Leave is 25 days. How many days?", 'Our HR handbook says: "Leave is 25 days." How many days?',
    "Kontext (Auszug): Urlaub sind 25 Tage.\nWie viele Tage?", "Source 1 - Leave is 25 days.\nHow many days?",
    "CONTEXT\nLeave is 25 days.\nQUESTION\nHow many days?", "Below is some information. Leave is 25 days. How many days?",
    "The following is from our policy. Leave is 25 days. How many days?",
    "<document_content>Leave is 25 days.</document_content>\nHow many days?", "<doc_1>Leave is 25 days.</doc_1> How many?",
    "<chunk>Leave is 25 days.</chunk>\nHow many days?", "Chunk 1: Leave is 25 days.\nHow many days?",
    "Result 1: Leave is 25 days.\nHow many days?", "[1] Leave is 25 days.\nHow many days?",
    "Policy: Leave is 25 days.\nHow many days?", "Facts: Leave is 25 days.\nHow many days?",
    "```\nLeave is 25 days.\n```\nHow many days?", "| clause | text |\n|---|---|\n| 4 | Leave is 25 days |\nHow many?",
    '"Leave is 25 days per year." How many days?',
])
def test_a_prompt_that_refers_to_context_it_was_given_is_noticed(prompt):
    assert mentions_context(prompt)


def test_only_a_number_or_a_parts_word_in_parentheses_leaves_a_label_bare():
    """A second review: any 40 characters in parentheses made a bare label ("Context (answer in German):"), so the
    app's instruction in them was dropped with its label; the label still refers to the material that follows."""
    from hguard.streaming import label_only

    for bare in ("Sources (2):", "Context (1 of 3):", "Kontext (Auszug):", "Documents (excerpt):", "Context (part 2):"):
        assert label_only(bare), bare
    for said in ("Context (answer in German):", "Sources (cite them):", "Context (German):"):
        assert not label_only(said), said
        assert mentions_context(f"{said}\nLeave is 25 days.\nHow many days?"), said


@pytest.mark.parametrize("question", [
    "What is the nasal passage?", "In what context is aspirin prescribed?", "Which organ is retrieved in a liver transplant?",
    "What sources of vitamin D are there?", "What is the capital of France?",
    "In welchem Kontext wird Aspirin verschrieben?", "Which sections of the GDPR cover consent?",
    "What information does the app collect: location or contacts?", "Here is my question: what is the capital of Chile?",
    "Is 3 < 5 > 2 true?", "What does <b> mean in HTML?",
    # instructions people write as system prompts
    "The following is a conversation with an AI assistant. The assistant is helpful.",
    'If the user says "hi", greet them and ask how you can help.',
    "In this context, what does the word 'bank' mean?", "When was the Passage of the Stamp Act?",
    "How far is Lake Victoria from the source of the Nile?", "What language is used in the source code of Linux?",
    "Who discovered the passage between South America and Antarctica, and when did ships first sail through the passage?",
    "Who signed the documents in the Treaty of Versailles, and where are the documents kept?",
    "Which composer wrote the excerpts known as the Pictures at an Exhibition?", "Which given documents are needed for a passport?",
    "Quick facts: what is the capital of Peru?", "Policy: what is the notice period?", 'What does "habeas corpus" mean?',
])
def test_a_question_that_only_uses_a_context_word_is_not_a_reference_to_context(question):
    assert not mentions_context(question)


def test_a_question_with_material_of_its_own_is_context_nobody_identified():
    passage = ("Employees receive 25 days of paid annual leave per year, rising to 28 days after five years of "
               "service, and unused days may be carried over until the end of March.")
    assert holds_material(f"{passage}\nHow many days of leave do I get after six years?")  # pasted, no label at all
    assert holds_material(f"How many days of leave do I get? {passage}")  # after the question too
    # material run into the question with semicolons or commas (a verification trial's accepted answer)
    assert holds_material("Burkina Faso moved its capital from Ouagadougou to Bobo-Dioulasso in 2025; all ministries "
                          "moved there in March; the old capital is now a provincial town; what is the capital of Burkina Faso?")
    assert holds_material("Given that " + ", ".join(["the office moved to Zurich in 2024"] * 5) + ", where is the office?")
    # a passage in brackets or quotes before its question ("({context}) {question}"): its end was not a sentence end,
    # so the passage's last clause was read as part of the question and the rest fell below the count
    pramexolol = ("Pramexolol is a calcium channel blocker developed for the treatment of hypertension and stable angina; "
                  "in phase II trials it lowered resting heart rate and systolic pressure in adults.")
    for opened, closed in (("(", ")"), ("[", "]"), ('"', '"'), ("“", "”")):
        q = f"{opened}{pramexolol}{closed} What drug class does pramexolol belong to?"
        assert holds_material(q), q
    assert unread_context(f"{passage} How many days?").startswith("the prompt holds 20 or more words")
    # a question asked alone, or with a short lead-in, is a question
    for q in ("What is the capital of Peru?", "I am a student. What is the capital of Peru?",
              "Who discovered the passage between South America and Antarctica, and when did ships first sail through it?"):
        assert not holds_material(q) and unread_context(q) is None, q
    assert unread_context("What is the capital?", "Use the following context.") == "the prompt refers to context"


_CSV = "fee,amount\nwire,25.00\novernight delivery,30.00\nstop payment,35.00\nreturned item,34.00"
_JSON = ('[{"plan": "Basic", "monthly_fee": 0, "apr": "24.99%"}, '
         '{"plan": "Premium", "monthly_fee": 19.99, "apr": "14.99%"}]')
_KEY_VALUE = "Account: Everyday Checking\nMonthly fee: $12\nMinimum balance to waive fee: $1,500\nOverdraft fee: $35"
_TSV = "Plan\tMonthly fee\tAPR\nBasic\t$0\t24.99%\nPlus\t$9.99\t19.99%"


@pytest.mark.parametrize("table", [_CSV, _JSON, _KEY_VALUE, _TSV, _CSV.replace(",", ";"), "Plan | Fee\nBasic | $0\nPlus | $9"])
def test_a_small_table_pasted_as_text_is_material(table):
    """A finance team's trial: a small CSV, JSON, "label: value" or tab-separated table in a hand-built prompt was
    neither material nor a reference to context (only a markdown table was), though the adapter's README said a
    table is; its answer was read as a closed-book one."""
    for question in ("What is the overdraft fee?", "What is the monthly fee of the Plus plan?"):
        prompt = f"{table}\n\n{question}"
        assert mentions_context(prompt) and holds_material(prompt), prompt
        assert unread_context(prompt) == "the prompt refers to context"


@pytest.mark.parametrize("prompt", [
    "Q: What is 2+2?\nA: 4\nQ: What is 3+3?\nA: 6\nQ: What is 5+5?",  # few-shot examples
    "John: hi there\nMary: hello\nJohn: how are you\nMary: fine",  # a transcript's speakers
    "Question: the input question\nThought: think\nAction: the action\nAction Input: its input\nObservation: x",
    'Respond with a JSON blob: {"action": "search", "action_input": "x"}',  # an agent's action blob
    'Tools: search, args: {"query": {"title": "Query", "type": "string"}}',  # a tool's JSON schema
    "Yesterday, I paid the bill.\nToday, the fee appeared.\nSo, what now?",  # sentences with a comma each
    "Meeting at 10:30\nLunch at 12:00\nWhat time is lunch?",
    # a review: a multiple-choice question's options, a quoted verse's lines ending in commas, a code snippet
    "Which planet is the largest?\nA: Mars\nB: Jupiter\nC: Venus\nD: Earth",
    "Which planet is the largest?\na: Mars\nb: Jupiter\nc: Venus\nd: Earth",
    "Who wrote this verse?\nRoses are red,\nViolets are blue,\nSugar is sweet,\nAnd so are you.",
    "Why does this raise?\nx = f(a, b)\ny = g(c, d)\nz = h(e, k)",
    "Why does this print nothing?\nprint(a, b)\nlog(c, d)\nshow(e, k)",
])
def test_a_format_a_transcript_or_sentences_are_no_pasted_table(prompt):
    assert not mentions_context(prompt)


@pytest.mark.parametrize("texts, agent", [
    (["Reply with Thought:, then Action: and Action Input: lines, or Answer:."], True),  # ReAct
    (["Thought: look it up.\naction: lookup\naction input: france"], True),  # in any case
    (["Use the tools. Reply with Tool: and Tool Input: lines."], True),  # a loop of one's own
    (['Respond with a $JSON_BLOB: {"action": "lookup", "action_input": "france"}'], True),  # structured chat
    (["What is the capital of Australia?", "Canberra."], False),
    (["Press the Action: button to start."], False),  # one of the two lines is no format
])
def test_an_agents_step_is_told_by_its_action_format(texts, agent):
    """A reviewer's trial: "Tool:" lines, LangChain's structured-chat JSON and lower-case "action:" were not
    recognised, so a held step was streamed to its agent unmarked."""
    from hguard.streaming import asks_for_actions

    assert asks_for_actions(texts) is agent


def test_a_cleaned_document_is_the_prompts_text_of_it_and_a_cut_one_stays_cut():
    """A LangChain chain's pasted documents, read back from its prompt (hguard.streaming.pasted_part): cleaned text
    is taken whole, as the model read it (quotes straightened twice in three words cut it at the first, and the
    liability cap was lost), and a document cut short is taken as cut, never extended into the question that
    follows it, even where the question repeats the document's words (it was, and grounded a wrong answer)."""
    from hguard.streaming import pasted_part

    doc = ("12.1 Either party may terminate this Agreement at any time upon thirty (30) days of notice. Upon "
           "termination the Customer\u2019s own Supplier\u2019s records and the Supplier\u2019s own staff\u2019s notes "
           "are returned within 30 days, and the Licensee\u2019s and Licensor\u2019s total liability is capped at EUR 500,000.")
    cleaned = doc.replace("\u2019", "'")
    assert pasted_part(doc, ["Use the following context.\n\n" + cleaned + "\n\nQuestion: What is the cap?"]) == cleaned
    refund = ("Refund Policy (v3). Standard orders: customers may return unused items within 14 days for store credit "
              "only. Members of the premium plan may not request a cash refund; they may request a full store credit "
              "within 90 days of delivery.")
    q = "Can members of the premium plan request a cash refund within 90 days?"
    prompt = f"Context:\n{refund[:120]}\n\nQuestion: {q}"
    assert pasted_part(refund, [prompt]) == refund[:120].rstrip()
    assert pasted_part(refund, [prompt], stops=[q]) == refund[:120].rstrip()
    # the next document's opening ends a cleaned one
    other = "Shipping Policy (v2). Orders ship within 2 business days from our warehouse in Leeds, UK."
    hyphenated = refund.replace("premium plan", "pre-\nmium plan")
    both = f"Context:\n{hyphenated.replace('-' + chr(10), '')}\n\n{other}\n\nQuestion: {q}"
    assert pasted_part(hyphenated, [both], stops=[other[:60], q]) == refund


def test_a_prompt_is_read_unescaped_only_where_the_chain_html_escaped_what_it_pasted():
    """A legal team's trial: a mustache template (or html.escape in format_docs) pasted "Service Level Agreement &amp;
    Support", not found as the document, whose text was then read as the app's instruction. The prompt is read
    unescaped where that finds the documents; a document holding "&amp;" itself, pasted as it is, keeps the prompt as
    it is. A document the chain changed otherwise is told apart from one it did not paste (hguard.streaming)."""
    import html

    from hguard.streaming import pasted_changed, unescaped_prompt

    sla = ('Service Level Agreement & Support, schedule B. Priority 1 incidents get a first "response" within 15 '
           "minutes, at any hour, and Priority 2 incidents within 4 business hours.")
    q = "What is the response time for Priority 1 incidents?"
    escaped = f"Context: {html.escape(sla)}\nQuestion: {q}"
    assert unescaped_prompt([escaped], [sla]) == [f"Context: {sla}\nQuestion: {q}"]
    quoted = f"Context: {sla}\nQuestion: What does &quot;response&quot; mean?"  # the question alone escaped
    assert unescaped_prompt([quoted], [sla]) == [html.unescape(quoted)]
    # the retriever's query says which reading asks it: mustache escaped the question, or the user's own text holds
    # the reference (a web form escaped it) and the chain pasted it as it is (a review: unescaped, it was no question)
    assert unescaped_prompt([quoted], [sla], ['What does "response" mean?']) == [html.unescape(quoted)]
    assert unescaped_prompt([quoted], [sla], ["What does &quot;response&quot; mean?"]) == [quoted]
    rd = f"Context: {sla}\nQuestion: What does R&amp;D mean?"
    assert unescaped_prompt([rd], [sla], ["What does R&amp;D mean?"]) == [rd]
    # a document holding a reference of its own (scraped HTML) beside one mustache escaped: compared document by
    # document, only the unescaped reading holds both as they are (a review: the prompt stayed escaped)
    scraped = ("Records Retention Policy, section 4, as published on the intranet page of the records office for all "
               "staff and contractors. &sect; 4.2 Customer contracts are retained for seven (7) years.")
    late = ("Service Level Agreement, schedule B. The Provider guarantees a monthly uptime of 99.9 percent for the "
            "Platform, measured each month by the Provider's monitoring and reported to the Customer in writing within "
            "ten days. Support & Maintenance: Priority 1 incidents get a first response within 15 minutes.")  # "&" late
    both = f"Context: {html.escape(late)}\n\n{html.escape(scraped)}\nQuestion: {q}"  # both openings found either way
    assert unescaped_prompt([both], [late, scraped], [q]) == [html.unescape(both)]
    pasted = f"Context: {late}\n\n{scraped}\nQuestion: {q}"  # a plain chain: as it is
    assert unescaped_prompt([pasted], [late, scraped], [q]) == [pasted]
    page = "Terms &amp; Conditions of the web shop, as the page was scraped: orders ship within 2 business days."
    raw = f"Context: {page}\nQuestion: When do orders ship? A &lt; B"
    assert unescaped_prompt([raw], [page]) == [raw]  # unescaped, the document would no longer be found
    assert pasted_changed(sla, [f"Context: {sla.replace('Service Level Agreement', 'SLA')}\nQuestion: {q}"])
    assert not pasted_changed(sla, [f"Context: Customer contracts are kept for seven years.\nQuestion: {q}"])
    assert not pasted_changed("Priority 1: 15 minutes.", ["Priority 1: 15 minutes, Priority 2: 4 hours."])  # too short


def test_a_document_changed_and_cut_or_quoted_in_part_counts_as_pasted_changed():
    """A review: a document whose title a chain rewrote and which it cut to 300 characters held under half its runs of
    three words in the prompt and was not flagged: its text was read as the app's instruction. An opening of it
    standing half in the prompt (20 runs or more), or 12 of its runs in a row, count; a few of its words do not."""
    from hguard.streaming import pasted_changed

    sla = ("Service Level Agreement, schedule B. Priority 1 incidents get a first response within 15 minutes, at any "
           "hour, and Priority 2 incidents within 4 business hours. " + " ".join(
               f"Clause B.{i}: the Provider shall report incident category {i} to the Customer in writing within "
               f"{i + 2} business days of its resolution, with the root cause and the remedy." for i in range(1, 9)))
    instruction = "Use the following pieces of retrieved context to answer the question. Keep the answer concise."
    for cut in (300, 120):
        assert pasted_changed(sla, [f"{instruction}\nContext: {sla.replace('Service Level Agreement', 'SLA')[:cut]}"])
    assert pasted_changed(sla, [f"{instruction}\nContext: {sla[400:700]}"])  # a stretch of it
    dropped = " ".join(w for i, w in enumerate(sla.split()) if i % 8 != 7)[:300]  # every 8th word left out: no run
    assert pasted_changed(sla, [f"{instruction}\nContext: {dropped}"])
    assert not pasted_changed(sla, [f"{instruction}\nContext: {sla[400:470]}"])  # 12 of its words: not enough
    assert not pasted_changed(sla, [f"{instruction} Report incidents in writing to the Customer within 3 business days."])


def test_a_history_holding_several_held_answers_names_each_up_to_a_few_and_counts_them_all():
    """The hold of a follow-up named only the first held turn of its history: a reviewer checked that one and knew
    nothing of the others built on. Every held turn is counted, the first few named with their records."""
    from hguard import streaming
    from hguard.streaming import HISTORY_DECISION, held_history_turn

    def chat(*answers):
        turns = []
        for a in answers:
            turns += [{"role": "user", "content": "and then?"}, {"role": "assistant", "content": a[0], **a[1]}]
        return turns

    held = lambda rid: ("Sick leave: 10 days.", {HISTORY_DECISION: {"route": "review", "audit_id": rid}})
    fine = ("30 days.", {HISTORY_DECISION: {"route": "accept", "audit_id": "ok"}})
    marked = ("[needs review] Part-time: 28 days.", {})
    assert held_history_turn(chat(fine, fine), []) is None
    one = held_history_turn(chat(fine, held("r1"), fine), [])
    assert one == ("the history holds an answer hguard held for review (record r1) (history turn 3); a follow-up may "
                   "build on it, so this answer is held for review too")
    two = held_history_turn(chat(held("r1"), fine, marked), [])
    assert two == ("the history holds 2 answers hguard held for review (history turns 1 (record r1), 5); a follow-up "
                   "may build on them, so this answer is held for review too")
    named = streaming.NAMED_HELD_TURNS  # bounded: the first few named, the rest counted
    many = chat(*[held(f"r{k}") for k in range(named + 2)], fine)
    said = held_history_turn(many, [])
    assert said is not None and said.startswith(f"the history holds {named + 2} answers")
    assert all(f"(record r{k})" in said for k in range(named))
    assert f"(record r{named})" not in said and "and 2 more)" in said
