//! Raw prompts that went through a chat template, turned back into messages: ChatML,
//! Llama 3, Gemma and the `[INST]` family (Mistral, Llama 2). A server's response (vLLM,
//! llama.cpp) or a `/completion` request often holds only the rendered prompt string; an
//! SFT export needs the system and user turns it was made from.
//!
//! The markup is that of the real templates, as llama.cpp renders them
//! (`src/llama-chat.cpp`, `llm_chat_apply_template`, in llama-cpp-python 0.3.36's vendored
//! llama.cpp) and as the models' `tokenizer_config.json` chat templates write them (BOS
//! tokens included). A prompt whose markup does not parse cleanly (text outside the
//! turns, a role that is not system/user/assistant) is kept whole as one user message: the
//! text the model saw, rather than a guess at its turns.

use crate::requests::{Message, Prompt, Role};

/// A chat template family this module can read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// `<|im_start|>role\n…<|im_end|>\n` (Qwen, Yi, many fine-tunes).
    ChatMl,
    /// `<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
    Llama3,
    /// `<bos><start_of_turn>user\n…<end_of_turn>\n`, the assistant named `model`.
    Gemma,
    /// `<s>[INST] … [/INST] …</s>`: Mistral v1/v3/v3-tekken/v7 and Llama 2
    /// (`<<SYS>>` system blocks, v7's `[SYSTEM_PROMPT]`).
    Inst,
}

/// Which template's markup `raw` starts with (after BOS tokens and whitespace), if any.
pub fn detect(raw: &str) -> Option<Template> {
    let head = strip_leading(raw, &["<|begin_of_text|>", "<bos>", "<s>"]);
    if head.starts_with(CHATML_START) {
        Some(Template::ChatMl)
    } else if head.starts_with(LLAMA3_HEADER_START) {
        Some(Template::Llama3)
    } else if head.starts_with(GEMMA_START) {
        Some(Template::Gemma)
    } else if head.starts_with(INST_START) || head.starts_with(SYSTEM_PROMPT_START) {
        Some(Template::Inst)
    } else {
        None
    }
}

/// The messages of a raw prompt: parsed back from its chat markup (a trailing open
/// assistant header, the generation prompt, is dropped), or the whole text as one user
/// message when it has no markup or the markup does not parse cleanly.
pub fn parse(raw: &str) -> Prompt {
    let parsed = match detect(raw) {
        Some(Template::ChatMl) => parse_chatml(raw),
        Some(Template::Llama3) => parse_llama3(raw),
        Some(Template::Gemma) => parse_gemma(raw),
        Some(Template::Inst) => parse_inst(raw),
        None => None,
    };
    match parsed {
        Some(messages) => Prompt {
            messages,
            chat: true,
        },
        None => Prompt::plain(raw),
    }
}

const CHATML_START: &str = "<|im_start|>";
const CHATML_END: &str = "<|im_end|>";
const LLAMA3_HEADER_START: &str = "<|start_header_id|>";
const LLAMA3_HEADER_END: &str = "<|end_header_id|>";
const LLAMA3_END: &str = "<|eot_id|>";
const GEMMA_START: &str = "<start_of_turn>";
const GEMMA_END: &str = "<end_of_turn>";
const INST_START: &str = "[INST]";
const INST_END: &str = "[/INST]";
const SYS_START: &str = "<<SYS>>";
const SYS_END: &str = "<</SYS>>";
const SYSTEM_PROMPT_START: &str = "[SYSTEM_PROMPT]";
const SYSTEM_PROMPT_END: &str = "[/SYSTEM_PROMPT]";
const BOS: &str = "<s>";
const EOS: &str = "</s>";

/// `text` without leading whitespace and any of the given tokens, in any order.
fn strip_leading<'a>(text: &'a str, tokens: &[&str]) -> &'a str {
    let mut rest = text.trim_start();
    while let Some(token) = tokens.iter().find(|token| rest.starts_with(**token)) {
        rest = rest.get(token.len()..).unwrap_or("").trim_start();
    }
    rest
}

fn role_from_name(name: &str) -> Option<Role> {
    match name {
        "system" | "developer" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" | "model" => Some(Role::Assistant),
        _ => None,
    }
}

/// Turns read from a template, with the last one possibly left open (no end marker).
struct Turns {
    messages: Vec<Message>,
}

impl Turns {
    fn new() -> Self {
        Self {
            messages: Vec::new(),
        }
    }

    /// Adds a turn. An open (unterminated) turn must be the last; an open assistant turn
    /// with nothing in it is the generation prompt and is dropped. An open assistant turn
    /// with text (a prefill) is kept: the model saw it.
    fn push(&mut self, role: Role, content: &str, open: bool) {
        if open && role == Role::Assistant && is_generation_prompt(content) {
            return;
        }
        self.messages.push(Message {
            role,
            content: content.to_owned(),
        });
    }

    fn finish(self) -> Option<Vec<Message>> {
        (!self.messages.is_empty()).then_some(self.messages)
    }
}

/// An open assistant turn that holds nothing the model did not add itself: empty, or the
/// empty think block some templates add when thinking is switched off.
fn is_generation_prompt(content: &str) -> bool {
    let trimmed = content.trim();
    trimmed.is_empty()
        || trimmed
            .strip_prefix("<think>")
            .and_then(|rest| rest.strip_suffix("</think>"))
            .is_some_and(|inside| inside.trim().is_empty())
}

/// ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per turn, content written as is.
fn parse_chatml(raw: &str) -> Option<Vec<Message>> {
    let mut pieces = raw.split(CHATML_START);
    // Before the first turn: nothing but whitespace (ChatML models have no BOS text).
    if !pieces.next()?.trim().is_empty() {
        return None;
    }
    let mut turns = Turns::new();
    let mut pieces = pieces.peekable();
    while let Some(piece) = pieces.next() {
        let (role_name, body) = piece.split_once('\n').unwrap_or((piece, ""));
        let role = role_from_name(role_name.trim())?;
        let (content, open) = match body.split_once(CHATML_END) {
            Some((content, after)) => {
                // Only the newline the template writes may follow a closed turn.
                if !after.trim().is_empty() {
                    return None;
                }
                (content, false)
            }
            None if pieces.peek().is_none() => (body, true),
            None => return None,
        };
        turns.push(role, content, open);
    }
    turns.finish()
}

/// Llama 3: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`, content
/// trimmed by the template.
fn parse_llama3(raw: &str) -> Option<Vec<Message>> {
    let body = strip_leading(raw, &["<|begin_of_text|>"]);
    let mut pieces = body.split(LLAMA3_HEADER_START);
    if !pieces.next()?.trim().is_empty() {
        return None;
    }
    let mut turns = Turns::new();
    let mut pieces = pieces.peekable();
    while let Some(piece) = pieces.next() {
        let (role_name, body) = piece.split_once(LLAMA3_HEADER_END)?;
        let role = role_from_name(role_name.trim())?;
        let (content, open) = match body.split_once(LLAMA3_END) {
            Some((content, after)) => {
                if !after.trim().is_empty() {
                    return None;
                }
                (content, false)
            }
            None if pieces.peek().is_none() => (body, true),
            None => return None,
        };
        turns.push(role, content.trim(), open);
    }
    turns.finish()
}

/// Gemma: `<start_of_turn>role\ncontent<end_of_turn>\n`, `model` for the assistant,
/// content trimmed. Gemma has no system turn: its templates fold a system message into
/// the first user turn, so it comes back as part of that turn.
fn parse_gemma(raw: &str) -> Option<Vec<Message>> {
    let body = strip_leading(raw, &["<bos>"]);
    let mut pieces = body.split(GEMMA_START);
    if !pieces.next()?.trim().is_empty() {
        return None;
    }
    let mut turns = Turns::new();
    let mut pieces = pieces.peekable();
    while let Some(piece) = pieces.next() {
        let (role_name, body) = piece.split_once('\n').unwrap_or((piece, ""));
        let role = role_from_name(role_name.trim())?;
        let (content, open) = match body.split_once(GEMMA_END) {
            Some((content, after)) => {
                if !after.trim().is_empty() {
                    return None;
                }
                (content, false)
            }
            None if pieces.peek().is_none() => (body, true),
            None => return None,
        };
        turns.push(role, content.trim(), open);
    }
    turns.finish()
}

/// The `[INST]` family: `[INST] user [/INST] assistant</s>` per exchange, with a Llama 2
/// `<<SYS>>\n…\n<</SYS>>\n\n` block or a Mistral v7 `[SYSTEM_PROMPT]…[/SYSTEM_PROMPT]` for
/// the system message. Mistral v1–v3 write a system message as the first user turn's
/// opening paragraph, without markup; it comes back as part of that turn.
fn parse_inst(raw: &str) -> Option<Vec<Message>> {
    let mut turns = Turns::new();
    let mut rest = raw;
    loop {
        rest = strip_leading(rest, &[BOS]);
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix(SYSTEM_PROMPT_START) {
            let (system, after) = after.split_once(SYSTEM_PROMPT_END)?;
            turns.push(Role::System, system.trim(), false);
            rest = after;
            continue;
        }
        let after = rest.strip_prefix(INST_START)?;
        let (inside, after) = after.split_once(INST_END)?;
        let inside = inside.trim();
        let user = match inside.strip_prefix(SYS_START) {
            Some(system_and_user) => {
                let (system, user) = system_and_user.split_once(SYS_END)?;
                turns.push(Role::System, system.trim(), false);
                user
            }
            None => inside,
        };
        turns.push(Role::User, user.trim(), false);
        // The answer runs to the EOS token; without one it is the open, last turn.
        let next_inst = after.find(INST_START).unwrap_or(after.len());
        match after.find(EOS).filter(|&eos| eos < next_inst) {
            Some(eos) => {
                turns.push(Role::Assistant, after.get(..eos)?.trim(), false);
                rest = after.get(eos + EOS.len()..)?;
            }
            None if next_inst == after.len() => {
                turns.push(Role::Assistant, after, true);
                break;
            }
            None => return None,
        }
    }
    turns.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.to_owned(),
        }
    }

    fn role_name(role: Role) -> &'static str {
        role.name()
    }

    // Renderers that write what the templates write, for the round trip. Each follows
    // `llm_chat_apply_template` in llama.cpp's src/llama-chat.cpp (llama-cpp-python
    // 0.3.36), with the BOS token the model's tokenizer adds in front.

    /// llama-chat.cpp:250-257 (LLM_CHAT_TEMPLATE_CHATML).
    fn render_chatml(messages: &[Message], generation_prompt: bool) -> String {
        let mut out = String::new();
        for m in messages {
            out += &format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                role_name(m.role),
                m.content
            );
        }
        if generation_prompt {
            out += "<|im_start|>assistant\n";
        }
        out
    }

    /// llama-chat.cpp:485-493 (LLM_CHAT_TEMPLATE_LLAMA_3), BOS `<|begin_of_text|>`.
    fn render_llama3(messages: &[Message], generation_prompt: bool) -> String {
        let mut out = "<|begin_of_text|>".to_owned();
        for m in messages {
            out += &format!(
                "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                role_name(m.role),
                m.content.trim()
            );
        }
        if generation_prompt {
            out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
        }
        out
    }

    /// llama-chat.cpp:379-399 (LLM_CHAT_TEMPLATE_GEMMA), BOS `<bos>`; a system message
    /// is folded into the next user turn.
    fn render_gemma(messages: &[Message], generation_prompt: bool) -> String {
        let mut out = "<bos>".to_owned();
        let mut system = String::new();
        for m in messages {
            if m.role == Role::System {
                system += m.content.trim();
                continue;
            }
            let role = if m.role == Role::Assistant {
                "model"
            } else {
                "user"
            };
            out += &format!("<start_of_turn>{role}\n");
            if !system.is_empty() && role != "model" {
                out += &format!("{system}\n\n");
                system.clear();
            }
            out += &format!("{}<end_of_turn>\n", m.content.trim());
        }
        if generation_prompt {
            out += "<start_of_turn>model\n";
        }
        out
    }

    #[derive(Debug, Clone, Copy)]
    enum Mistral {
        V1,
        V3,
        V3Tekken,
    }

    /// llama-chat.cpp:274-298 (LLM_CHAT_TEMPLATE_MISTRAL_V1/V3/V3_TEKKEN), BOS `<s>`.
    fn render_mistral(version: Mistral, messages: &[Message]) -> String {
        let leading = if matches!(version, Mistral::V1) {
            " "
        } else {
            ""
        };
        let trailing = if matches!(version, Mistral::V3Tekken) {
            ""
        } else {
            " "
        };
        let mut out = "<s>".to_owned();
        let mut inside = false;
        for m in messages {
            if !inside {
                out += &format!("{leading}[INST]{trailing}");
                inside = true;
            }
            match m.role {
                Role::System => out += &format!("{}\n\n", m.content),
                Role::User => out += &format!("{}{leading}[/INST]", m.content),
                Role::Assistant => {
                    out += &format!("{trailing}{}</s>", m.content.trim());
                    inside = false;
                }
            }
        }
        out
    }

    /// llama-chat.cpp:258-273 (LLM_CHAT_TEMPLATE_MISTRAL_V7), BOS `<s>`.
    fn render_mistral_v7(messages: &[Message]) -> String {
        let mut out = "<s>".to_owned();
        for m in messages {
            match m.role {
                Role::System => out += &format!("[SYSTEM_PROMPT] {}[/SYSTEM_PROMPT]", m.content),
                Role::User => out += &format!("[INST] {}[/INST]", m.content),
                Role::Assistant => out += &format!(" {}</s>", m.content),
            }
        }
        out
    }

    /// llama-chat.cpp:299-340 (LLM_CHAT_TEMPLATE_LLAMA_2_SYS_BOS): `<<SYS>>` blocks,
    /// `<s>` before every later exchange.
    fn render_llama2(messages: &[Message]) -> String {
        let mut out = "<s>[INST] ".to_owned();
        let mut inside = true;
        for m in messages {
            if !inside {
                inside = true;
                out += "<s>[INST] ";
            }
            match m.role {
                Role::System => out += &format!("<<SYS>>\n{}\n<</SYS>>\n\n", m.content),
                Role::User => out += &format!("{} [/INST]", m.content),
                Role::Assistant => {
                    out += &format!("{}</s>", m.content);
                    inside = false;
                }
            }
        }
        out
    }

    fn chat(messages: Vec<Message>) -> Prompt {
        Prompt {
            messages,
            chat: true,
        }
    }

    #[test]
    fn plain_text_is_one_user_message() {
        let prompt = parse("Does MYC knock-down change BRD4? Answer up, down or none.");
        assert!(!prompt.chat);
        assert_eq!(
            prompt.messages,
            [message(
                Role::User,
                "Does MYC knock-down change BRD4? Answer up, down or none."
            )]
        );
        // Markup in the middle of plain text is text, not turns.
        let quoted = "What does <|im_start|> mean in ChatML?";
        assert_eq!(parse(quoted), Prompt::plain(quoted));
    }

    /// Qwen2.5's template with its default system message and the generation prompt, as
    /// vLLM's `prompt` field holds it.
    #[test]
    fn chatml_with_generation_prompt() {
        let raw = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nIs 7 prime?\nAnswer yes or no.<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(
                    Role::System,
                    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                ),
                message(Role::User, "Is 7 prime?\nAnswer yes or no."),
            ])
        );
        // Qwen3 with thinking switched off opens the answer with an empty think block.
        let raw = "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
        assert_eq!(parse(raw), chat(vec![message(Role::User, "Is 7 prime?")]));
    }

    #[test]
    fn llama3_with_bos_and_generation_prompt() {
        // Llama 3.1's template writes the knowledge-date lines into the system turn.
        let raw = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nIs 7 prime?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(
                    Role::System,
                    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief."
                ),
                message(Role::User, "Is 7 prime?"),
            ])
        );
    }

    #[test]
    fn gemma_model_turns_are_assistant_turns() {
        let raw = "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nIs 7 prime?<end_of_turn>\n<start_of_turn>model\n";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(Role::User, "Hi"),
                message(Role::Assistant, "Hello!"),
                message(Role::User, "Is 7 prime?"),
            ])
        );
    }

    #[test]
    fn inst_family_variants() {
        // Mistral-7B-Instruct-v0.1's tokenizer_config template: `bos + '[INST] ' +
        // content + ' [/INST]'`, answers `content + eos_token + ' '`.
        let raw = "<s>[INST] Hi [/INST]Hello!</s> [INST] Is 7 prime? [/INST]";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(Role::User, "Hi"),
                message(Role::Assistant, "Hello!"),
                message(Role::User, "Is 7 prime?"),
            ])
        );
        // Llama 2 with a system block.
        let raw = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nIs 7 prime? [/INST]";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(Role::System, "Be brief."),
                message(Role::User, "Is 7 prime?"),
            ])
        );
        // Mistral v7.
        let raw = "<s>[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT][INST] Is 7 prime?[/INST]";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(Role::System, "Be brief."),
                message(Role::User, "Is 7 prime?"),
            ])
        );
        // v1–v3 fold a system message into the first user turn: it stays there.
        let raw = "<s>[INST] Be brief.\n\nIs 7 prime? [/INST]";
        assert_eq!(
            parse(raw),
            chat(vec![message(Role::User, "Be brief.\n\nIs 7 prime?")])
        );
    }

    #[test]
    fn markup_that_does_not_parse_stays_whole() {
        for raw in [
            // An unknown role (a tool result) is not one of the three turns.
            "<|im_start|>tool\n{\"x\":1}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
            // Text after a closed turn.
            "<|im_start|>user\nHi<|im_end|>\nand more",
            // A turn left open before another starts.
            "<start_of_turn>user\nHi<start_of_turn>model\n",
            // An [INST] never closed.
            "<s>[INST] Hi",
            "<|start_header_id|>user\n\nHi<|eot_id|>",
        ] {
            assert_eq!(parse(raw), Prompt::plain(raw), "{raw:?}");
        }
    }

    #[test]
    fn an_assistant_prefill_is_kept() {
        let raw = "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\nLet me think";
        assert_eq!(
            parse(raw),
            chat(vec![
                message(Role::User, "Is 7 prime?"),
                message(Role::Assistant, "Let me think"),
            ])
        );
    }

    /// Content as templates leave it intact: no markup, no outer whitespace (Llama 3 and
    /// Gemma trim), at least one character.
    fn content() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9?]([a-zA-Z0-9 .,?:\n]{0,30}[a-zA-Z0-9.?])?"
    }

    /// A prompt: an optional system message, then user/assistant exchanges, ending with a
    /// user turn.
    fn conversation(with_system: bool) -> impl Strategy<Value = Vec<Message>> {
        (
            proptest::option::of(content()),
            proptest::collection::vec((content(), content()), 0..3),
            content(),
        )
            .prop_map(move |(system, exchanges, last)| {
                let mut messages = Vec::new();
                if let Some(system) = system.filter(|_| with_system) {
                    messages.push(message(Role::System, &system));
                }
                for (user, assistant) in exchanges {
                    messages.push(message(Role::User, &user));
                    messages.push(message(Role::Assistant, &assistant));
                }
                messages.push(message(Role::User, &last));
                messages
            })
    }

    proptest! {
        #[test]
        fn chatml_round_trips(messages in conversation(true), generation_prompt: bool) {
            let raw = render_chatml(&messages, generation_prompt);
            prop_assert_eq!(parse(&raw), chat(messages));
        }

        #[test]
        fn llama3_round_trips(messages in conversation(true), generation_prompt: bool) {
            let raw = render_llama3(&messages, generation_prompt);
            prop_assert_eq!(parse(&raw), chat(messages));
        }

        #[test]
        fn gemma_round_trips(messages in conversation(false), generation_prompt: bool) {
            let raw = render_gemma(&messages, generation_prompt);
            prop_assert_eq!(parse(&raw), chat(messages));
        }

        #[test]
        fn mistral_round_trips(messages in conversation(false)) {
            for version in [Mistral::V1, Mistral::V3, Mistral::V3Tekken] {
                let raw = render_mistral(version, &messages);
                prop_assert_eq!(parse(&raw), chat(messages.clone()), "{:?}: {:?}", version, raw);
            }
        }

        #[test]
        fn mistral_v7_and_llama2_round_trip_with_system(messages in conversation(true)) {
            prop_assert_eq!(parse(&render_mistral_v7(&messages)), chat(messages.clone()));
            prop_assert_eq!(parse(&render_llama2(&messages)), chat(messages));
        }

        /// Gemma folds the system message into the first user turn.
        #[test]
        fn gemma_folds_the_system_message(system in content(), user in content()) {
            let raw = render_gemma(&[message(Role::System, &system), message(Role::User, &user)], true);
            prop_assert_eq!(
                parse(&raw),
                chat(vec![message(Role::User, &format!("{system}\n\n{user}"))])
            );
        }

        /// Whatever the text, parsing never panics and never loses a plain prompt.
        #[test]
        fn any_text_parses(raw in "\\PC{0,60}") {
            let prompt = parse(&raw);
            if detect(&raw).is_none() {
                prop_assert_eq!(prompt, Prompt::plain(&raw));
            }
        }
    }
}
