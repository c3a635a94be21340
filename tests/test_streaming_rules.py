"""The adapters' shared reading of a prompt (hguard.streaming): when a prompt refers to context it was given."""

from __future__ import annotations

import pytest

from hguard.streaming import mentions_context


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
])
def test_a_prompt_that_refers_to_context_it_was_given_is_noticed(prompt):
    assert mentions_context(prompt)


@pytest.mark.parametrize("question", [
    "What is the nasal passage?", "In what context is aspirin prescribed?", "Which organ is retrieved in a liver transplant?",
    "What sources of vitamin D are there?", "What is the capital of France?",
    "In welchem Kontext wird Aspirin verschrieben?", "Which sections of the GDPR cover consent?",
    "What information does the app collect: location or contacts?", "Here is my question: what is the capital of Chile?",
    "Is 3 < 5 > 2 true?", "What does <b> mean in HTML?",
])
def test_a_question_that_only_uses_a_context_word_is_not_a_reference_to_context(question):
    assert not mentions_context(question)
