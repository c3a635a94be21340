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
])
def test_a_prompt_that_refers_to_context_it_was_given_is_noticed(prompt):
    assert mentions_context(prompt)


@pytest.mark.parametrize("question", [
    "What is the nasal passage?", "In what context is aspirin prescribed?", "Which organ is retrieved in a liver transplant?",
    "What sources of vitamin D are there?", "What is the capital of France?",
])
def test_a_question_that_only_uses_a_context_word_is_not_a_reference_to_context(question):
    assert not mentions_context(question)
