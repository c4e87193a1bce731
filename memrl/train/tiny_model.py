"""A tiny causal LM built offline: byte-level BPE tokenizer + small Llama, saved as a Hugging Face directory.

No model hub is reachable on the machines this project grows up on, so the default pipeline trains its own
tokenizer on synthetic text and initialises a sub-million-parameter Llama. The directory it writes is an
ordinary HF checkpoint (safetensors, `chat_template.jinja`, `generation_config.json`), so every other part
of memrl treats it exactly like a real local checkpoint.

Why Llama and not Qwen2: transformers forces `Qwen2Tokenizer` onto any `model_type: qwen2` directory, which
swaps in Qwen's digit-splitting pre-tokenizer and silently changes the ids on reload
(measured on our CPU machines). With `model_type: llama` AutoTokenizer returns our tokenizer as-is.

The chat template is ChatML with the assistant turn (including its `<|im_end|>`) wrapped in
`{% generation %}...{% endgeneration %}`: TRL's SFTTrainer needs those markers for `assistant_only_loss=True`
and warns unless the end-of-turn token is inside them (otherwise the model never learns to stop).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from memrl.protocol.prompts import PROMPTS

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"  # end of a chat turn = end of generation
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, EOS_TOKEN]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# ---- tokenizer ---------------------------------------------------------------------------------------
def train_tokenizer(corpus: Iterable[str], vocab_size: int = 3000, max_length: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (GPT-2 style: every byte is representable, nothing is <unk>)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        model_max_length=max_length,
        padding_side="left",  # decoder-only batched generation pads on the left
    )
    fast.add_special_tokens({"additional_special_tokens": [IM_START]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


# ---- model -------------------------------------------------------------------------------------------
def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 1024,
    seed: int = 0,
    init_std: float = 0.02,
) -> LlamaForCausalLM:
    """A randomly initialised Llama sized to the tokenizer (about 0.9M parameters at the defaults).

    `init_std` is HF's `initializer_range`. At the usual 0.02 an untrained tiny model's logits are nearly flat
    and greedy decoding repeats one token whatever the prompt; tests use ~0.1 so that outputs depend on the
    prompt (which is what batching/padding tests need to see).
    """
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        initializer_range=init_std,
        tie_word_embeddings=True,  # halves the parameter count of a tiny model; vocab dominates it
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    return model.float().eval()


def save_model_dir(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: str | os.PathLike) -> Path:
    """Write an HF directory: model.safetensors, config, generation_config (eos/pad), tokenizer, chat template."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model.generation_config is None or model.generation_config.eos_token_id is None:
        model.generation_config = GenerationConfig(
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_model_dir(
    out_dir: str | os.PathLike,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 3000,
    *,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 1024,
    seed: int = 0,
    init_std: float = 0.02,
) -> Path:
    """Tokenizer + model + save, in one call. Writes to a temp dir first so a crash leaves no half model."""
    corpus_lines = list(default_corpus(seed=seed) if corpus is None else corpus)
    if not corpus_lines:
        raise ValueError("build_tiny_model_dir: the corpus is empty; pass some text lines or corpus=None")
    tok = train_tokenizer(corpus_lines, vocab_size=vocab_size, max_length=max_positions)
    model = build_tiny_model(tok, hidden_size, layers, heads, kv_heads, max_positions, seed, init_std)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_model_dir(model, tok, tmp)
        meta = {
            "builder": "memrl.train.tiny_model.build_tiny_model_dir",
            "vocab_size": len(tok),
            "corpus_lines": len(corpus_lines),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "seed": seed,
            "init_std": init_std,
        }
        (tmp / "memrl_tiny_model.json").write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "README.md").write_text(  # its card: models trained from it inherit the license named here
            "---\nlicense: apache-2.0\nlibrary_name: transformers\ntags: [memrl, tiny-model]\n---\n"
            f"# memrl tiny model\n\nA {meta['num_parameters']:,}-parameter Llama with a byte-level BPE tokenizer, "
            "built offline by memrl (randomly initialised; seed and sizes in memrl_tiny_model.json). For tests "
            "and CPU demos only.\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---- default corpus ----------------------------------------------------------------------------------
NAMES = ["Ana", "Ben", "Caroline", "Melanie", "John", "Maria", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Yuki",
         "Jon", "Gina", "Nate", "Joanna", "Audrey", "Andrew", "James", "Priya", "Leo", "Emma", "Kofi", "Mei"]
CITIES = ["Paris", "Berlin", "Tokyo", "Boston", "Lisbon", "Nairobi", "Toronto", "Seoul", "Madrid", "Denver",
          "Oslo", "Austin", "Rome", "Sydney", "Chicago", "Dublin"]
PETS = ["dog", "cat", "parrot", "rabbit", "hamster", "turtle"]
PET_NAMES = ["Max", "Luna", "Bella", "Charlie", "Milo", "Coco", "Oscar", "Daisy"]
HOBBIES = ["painting", "hiking", "pottery", "chess", "running", "cooking", "photography", "swimming",
           "guitar", "reading", "yoga", "camping", "dancing", "gardening", "surfing", "knitting"]
FOODS = ["pizza", "sushi", "tacos", "pasta", "curry", "salad", "ramen", "dumplings", "pancakes"]
JOBS = ["teacher", "nurse", "software engineer", "chef", "designer", "counselor", "pilot", "writer",
        "doctor", "student", "artist", "lawyer"]
COLORS = ["red", "blue", "green", "yellow", "purple", "black", "white", "orange"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Everyday words of chit-chat dialogue, so the BPE has merges for them rather than spelling them out.
COMMON_WORDS = ["the", "a", "an", "and", "or", "but", "so", "because", "if", "when", "while", "after", "before", "about", "with", "without", "for", "from", "to", "in", "on", "at", "by", "of", "I", "you", "he", "she", "we", "they", "it", "my", "your", "his", "her", "our", "their", "me", "him", "us", "them", "this", "that", "these", "those", "there", "here", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "do", "does", "did", "will", "would", "can", "could", "should", "may", "might", "must", "not", "no", "yes", "very", "really", "just", "also", "too", "still", "already", "again", "always", "never", "often", "sometimes", "usually", "what", "where", "when", "who", "why", "how", "which", "go", "went", "going", "come", "came", "see", "saw", "look", "looked", "feel", "felt", "think", "thought", "know", "knew", "want", "wanted", "like", "liked", "love", "loved", "make", "made", "take", "took", "get", "got", "give", "gave", "tell", "told", "say", "said", "talk", "talked", "ask", "asked", "help", "helped", "try", "tried", "start", "started", "finish", "finished", "plan", "planned", "visit", "visited", "meet", "met", "move", "moved", "buy", "bought", "work", "worked", "play", "played", "read", "write", "wrote", "learn", "learned", "teach", "taught", "join", "joined", "adopt", "adopted", "day", "week", "month", "year", "weekend", "morning", "evening", "night", "today", "time", "trip", "vacation", "party", "concert", "festival", "family", "friend", "friends", "kids", "children", "mom", "dad", "sister", "brother", "husband", "wife", "partner", "colleague", "neighbor", "home", "house", "apartment", "city", "school", "class", "job", "office", "team", "project", "book", "movie", "song", "music", "art", "photo", "new", "old", "good", "great", "nice", "amazing", "awesome", "fun", "happy", "sad", "excited", "tired", "busy", "proud", "grateful", "hard", "easy", "big", "small", "first", "last", "next", "other", "same", "different", "favorite", "special", "important", "beautiful", "wonderful", "thanks", "thank", "sorry", "hey", "hi", "hello", "wow", "oh", "well", "sure", "okay", "glad", "hope", "remember", "forget", "miss"]
RELATIVE = ["yesterday", "last week", "last month", "last year", "two days ago", "next month", "tomorrow",
            "last weekend", "next week", "this morning"]


def _date(rng: random.Random) -> tuple[str, str, str]:
    """One random moment as (ISO, LoCoMo-style '7:20 pm on 16 June, 2023', short '2023-06-16')."""
    y, m, d = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm = rng.randint(0, 23), rng.choice([0, 5, 10, 15, 20, 30, 40, 45, 50, 56])
    iso = f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:00"
    h12 = hh % 12 or 12
    human = f"{h12}:{mm:02d} {'am' if hh < 12 else 'pm'} on {d} {MONTHS[m - 1]}, {y}"
    return iso, human, iso[:10]


def _fact(rng: random.Random, name: str) -> tuple[str, str, str]:
    """(utterance by `name`, memory text about `name`, short answer)."""
    kind = rng.randrange(8)
    if kind == 0:
        c = rng.choice(CITIES)
        return f"I just moved to {c}!", f"{name} lives in {c}", c
    if kind == 1:
        p, pn = rng.choice(PETS), rng.choice(PET_NAMES)
        return f"We adopted a {p} named {pn}.", f"{name} has a {p} named {pn}", pn
    if kind == 2:
        h = rng.choice(HOBBIES)
        return f"I started {h} {rng.choice(RELATIVE)}.", f"{name} enjoys {h}", h
    if kind == 3:
        f = rng.choice(FOODS)
        return f"My favorite food is {f}.", f"{name} loves {f}", f
    if kind == 4:
        j = rng.choice(JOBS)
        return f"I work as a {j} now.", f"{name} works as a {j}", j
    if kind == 5:
        c = rng.choice(COLORS)
        return f"I painted my room {c}.", f"{name}'s favorite color is {c}", c
    if kind == 6:
        h = rng.choice(HOBBIES)
        return f"I quit {h}, it was too much.", f"{name} no longer does {h}", "no"
    c = rng.choice(CITIES)
    return f"I'm going to {c} {rng.choice(RELATIVE)}.", f"{name} is traveling to {c}", c


def _corpus_lines(rng: random.Random, n: int) -> Iterator[str]:
    for _ in range(n):
        a, b = rng.sample(NAMES, 2)
        iso, human, short = _date(rng)
        said, mem, ans = _fact(rng, a)
        _, mem2, _ = _fact(rng, b)
        i, j = rng.randrange(12), rng.randrange(12)
        k = rng.randrange(9)
        if k == 8:
            words = rng.sample(COMMON_WORDS, rng.randint(6, 14))
            yield f"{a}: " + " ".join(words).capitalize() + rng.choice([".", "!", "?"])
        elif k == 0:
            yield f"{a}: {said} {b}: That's great, {a}! How was it {rng.choice(WEEKDAYS)}?"
        elif k == 1:
            yield f"[{i}] {mem} ({short})\n[{j}] {mem2} ({short})"
        elif k == 2:
            op = rng.choice(["ADD", "UPDATE", "DELETE", "NOOP"])
            if op == "ADD":
                yield json.dumps({"ops": [{"op": "ADD", "id": str(i), "text": mem}]})
            elif op == "UPDATE":
                yield json.dumps({"ops": [{"op": "UPDATE", "id": str(i), "text": mem},
                                          {"op": "ADD", "text": mem2}]})
            elif op == "DELETE":
                yield json.dumps({"ops": [{"op": "DELETE", "id": str(i)}]})
            else:
                yield json.dumps({"ops": [{"op": "NOOP"}]}) + " " + json.dumps({"ops": []})
        elif k == 3:
            ev = rng.choice(["ADD", "UPDATE", "DELETE", "NONE"])
            item = {"id": str(i), "text": mem, "event": ev}
            if ev == "UPDATE":
                item["old_memory"] = mem2
            yield json.dumps({"memory": [item]})
        elif k == 4:
            yield f"Question: Where does {a} live? When did {a} visit {rng.choice(CITIES)}?\n[{i}] [{j}]\n**Answer:** {ans}"
        elif k == 5:
            yield f"- {human}: {mem}. {iso} {short} {rng.choice(RELATIVE)}"
        elif k == 6:
            sel = [f"<session_{rng.randint(1, 20)}>" for _ in range(rng.randint(1, 3))]
            yield json.dumps({"selected_memory": sel, "answer": ans})
        else:
            label = rng.choice(["CORRECT", "WRONG"])
            yield f"The answer mentions {ans}, the same topic as the gold answer. " + json.dumps({"label": label})


# The prompts whose text is in the default corpus: the set it was fixed with. A prompt added later is not, so
# adding one does not change the default tiny model (its tokenizer, hence its initial weights), which the
# learning tests start from; a byte-level BPE still encodes any new text.
_CORPUS_PROMPTS = ("memory_r1_manager", "compact_manager", "memory_r1_answer", "compact_answer", "memory_t1", "mem0_judge", "context_picker")


def default_corpus(num_lines: int = 4000, seed: int = 0) -> list[str]:
    """Deterministic synthetic text covering what memrl's prompts and outputs contain.

    Dialogue lines, memory listings `[id] text (date)`, the compact op JSON, Mem0's memory JSON, `**Answer:**`,
    Memory-T1's JSON, the judge's label JSON, LoCoMo-style and ISO dates, plus the text of every prompt
    template, so that a 3000-token BPE learns merges for the words the policies actually see.
    """
    rng = random.Random(seed)
    lines = list(_corpus_lines(rng, num_lines))

    for t in (PROMPTS[name] for name in _CORPUS_PROMPTS):
        lines.extend(p for p in ((t.system or "") + "\n" + t.user_template).split("\n") if p.strip())
    return lines
