//! `cargo xtask gen`: writes a synthetic PerturbQA-style trace file in the canonical JSONL
//! format (SPEC §2), for benchmarks, demos and end-to-end tests.
//!
//! The data is statistically meaningful, not just well-formed: every question has a latent
//! difficulty, the model is right more often on easy questions, and wrong traces carry lower
//! log-probs, so perplexity and CoCoA really do detect errors (AUROC > 0.5 in `tracesift
//! eval`). The same seed always gives a byte-identical file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

const USAGE: &str = "\
usage: cargo xtask gen --out FILE [--questions N | --size-mb M] [--samples 8] [--tokens 300]
                       [--top-k 5] [--labels 0.3] [--seed 1] [--gz]

  --out FILE       where to write the JSONL (`-` for stdout)
  --questions N    number of questions (default 100)
  --size-mb M      instead of --questions: keep adding questions until the JSONL reaches M MB
                   (uncompressed bytes, 1 MB = 1,000,000 bytes)
  --samples K      sampled traces per question, besides the one greedy trace (default 8)
  --tokens T       tokens (words) per trace; every trace has exactly T log-probs (default 300, min 3)
  --top-k K        top log-probs per token, the chosen token's first (default 5, 2 to 100)
  --labels F       fraction of questions that carry a gold `label` (default 0.3)
  --seed S         PRNG seed; the same seed gives a byte-identical file (default 1)
  --gz             gzip the output (fast level; --size-mb still counts uncompressed bytes)";

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GenAmount {
    /// Exactly this many questions.
    Questions(u64),
    /// Questions until at least this many uncompressed bytes are written.
    Bytes(u64),
}

/// Every knob of the generator; `Default` gives the documented CLI defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    pub amount: GenAmount,
    pub samples_per_question: u32,
    pub tokens_per_trace: u32,
    pub top_k: u32,
    pub labelled_question_fraction: f64,
    pub seed: u64,
}

impl GenOptions {
    /// Checked before any file is created, so a bad flag leaves nothing behind.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tokens_per_trace < MINIMUM_TOKENS_PER_TRACE {
            bail!(
                "--tokens must be at least {MINIMUM_TOKENS_PER_TRACE} (\"Final answer: X\" alone is 3 words)"
            );
        }
        // SPEC §2 wants k ≥ 2; past 100 the alternatives would sink to the clamp and tie.
        if !(MINIMUM_TOP_K..=MAXIMUM_TOP_K).contains(&self.top_k) {
            bail!("--top-k must be between {MINIMUM_TOP_K} and {MAXIMUM_TOP_K}");
        }
        if !(0.0..=1.0).contains(&self.labelled_question_fraction) {
            bail!(
                "--labels must be a fraction in [0, 1], got {}",
                self.labelled_question_fraction
            );
        }
        Ok(())
    }
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            amount: GenAmount::Questions(100),
            samples_per_question: 8,
            tokens_per_trace: 300,
            top_k: 5,
            labelled_question_fraction: 0.3,
            seed: 1,
        }
    }
}

/// What one `generate` call wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenStats {
    pub questions: u64,
    pub traces: u64,
    /// Uncompressed JSONL bytes, newlines included.
    pub bytes: u64,
    pub labelled_questions: u64,
    /// Traces whose answer equals the question's gold class (labelled or not).
    pub correct_traces: u64,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(parsed) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    parsed.options.validate()?;
    let started = Instant::now();
    let stats = write_file(&parsed.options, &parsed.out_path, parsed.gzip)?;
    let seconds = started.elapsed().as_secs_f64();
    let compressed_note = if parsed.gzip && parsed.out_path.as_os_str() != "-" {
        let on_disk = std::fs::metadata(&parsed.out_path)
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        format!(", {on_disk} bytes gzipped")
    } else {
        String::new()
    };
    eprintln!(
        "gen: {} questions ({} labelled), {} traces, {} bytes{compressed_note} -> {} in {seconds:.2} s ({:.0} MB/s); {:.1} % of answers correct",
        stats.questions,
        stats.labelled_questions,
        stats.traces,
        stats.bytes,
        parsed.out_path.display(),
        stats.bytes as f64 / 1e6 / seconds.max(1e-9),
        100.0 * stats.correct_traces as f64 / (stats.traces.max(1) as f64),
    );
    Ok(())
}

/// Writes the file at `out_path` (`-` for stdout), gzipped when asked.
pub fn write_file(
    options: &GenOptions,
    out_path: &std::path::Path,
    gzip: bool,
) -> anyhow::Result<GenStats> {
    // Large buffers: each trace is one ~20 KB write, and fewer syscalls keep us near disk speed.
    const WRITE_BUFFER_BYTES: usize = 1 << 20;
    let sink: Box<dyn Write> = if out_path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file = File::create(out_path)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        Box::new(file)
    };
    let mut buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, sink);
    let stats = if gzip {
        // Level 1: the synthetic text is very repetitive, so fast deflate still shrinks it a
        // lot, while the default level would make gzip the bottleneck by far.
        let mut encoder = GzEncoder::new(&mut buffered, Compression::fast());
        let stats = generate(options, &mut encoder)?;
        encoder.finish().context("cannot finish the gzip stream")?;
        stats
    } else {
        generate(options, &mut buffered)?
    };
    buffered
        .flush()
        .with_context(|| format!("cannot write {}", out_path.display()))?;
    Ok(stats)
}

struct ParsedArgs {
    options: GenOptions,
    out_path: PathBuf,
    gzip: bool,
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(args: &[String]) -> anyhow::Result<Option<ParsedArgs>> {
    let mut options = GenOptions::default();
    let mut out_path = None;
    let mut gzip = false;
    let mut question_count = None;
    let mut size_megabytes = None;
    let mut remaining = args.iter();
    while let Some(flag) = remaining.next() {
        let mut value = || {
            remaining
                .next()
                .map(String::as_str)
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--out" => out_path = Some(PathBuf::from(value()?)),
            "--questions" => question_count = Some(parse_number::<u64>(flag, value()?)?),
            "--size-mb" => size_megabytes = Some(parse_number::<f64>(flag, value()?)?),
            "--samples" => options.samples_per_question = parse_number(flag, value()?)?,
            "--tokens" => options.tokens_per_trace = parse_number(flag, value()?)?,
            "--top-k" => options.top_k = parse_number(flag, value()?)?,
            "--labels" => options.labelled_question_fraction = parse_number(flag, value()?)?,
            "--seed" => options.seed = parse_number(flag, value()?)?,
            "--gz" => gzip = true,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    options.amount = match (question_count, size_megabytes) {
        (Some(_), Some(_)) => bail!("give --questions or --size-mb, not both"),
        (Some(count), None) => GenAmount::Questions(count),
        (None, Some(megabytes)) => {
            if !(megabytes.is_finite() && megabytes > 0.0) {
                bail!("--size-mb must be a positive number, got {megabytes}");
            }
            GenAmount::Bytes((megabytes * 1e6).round() as u64)
        }
        (None, None) => GenOptions::default().amount,
    };
    let out_path = out_path.with_context(|| format!("--out FILE is required\n\n{USAGE}"))?;
    Ok(Some(ParsedArgs {
        options,
        out_path,
        gzip,
    }))
}

fn parse_number<T>(flag: &str, text: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .with_context(|| format!("{flag}: `{text}` is not a valid number"))
}

/// Writes the whole synthetic file to `out`; the same options always give the same bytes.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> anyhow::Result<GenStats> {
    options.validate()?;
    let mut generator = TraceGenerator::new(options)?;
    let mut stats = GenStats::default();
    loop {
        let more_wanted = match options.amount {
            GenAmount::Questions(count) => stats.questions < count,
            GenAmount::Bytes(target) => stats.bytes < target,
        };
        if !more_wanted {
            break;
        }
        generator.write_question(stats.questions + 1, out, &mut stats)?;
        stats.questions += 1;
    }
    Ok(stats)
}

const MINIMUM_TOKENS_PER_TRACE: u32 = 3;
const MINIMUM_TOP_K: u32 = 2;
const MAXIMUM_TOP_K: u32 = 100;

/// SplitMix64: tiny, fast, and good enough for synthetic data; no dependency needed, and its
/// output never changes between versions, which keeps files byte-identical per seed.
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub(crate) fn next_unit_nonzero(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..bound (multiply-shift, no modulo bias worth caring about here).
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.next_unit() < probability
    }

    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.next_unit_nonzero().ln()
    }

    /// Box-Muller; called once per trace, so its two transcendental calls do not matter.
    pub(crate) fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.next_unit_nonzero().ln()).sqrt();
        radius * (std::f64::consts::TAU * self.next_unit()).cos()
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        // Every list passed here is a non-empty constant; "" only guards the impossible case.
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerClass {
    Up,
    Down,
    Unchanged,
}

impl AnswerClass {
    fn answer_word(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unchanged => "none",
        }
    }

    fn direction_word(self) -> &'static str {
        match self {
            Self::Up => "upregulated",
            Self::Down => "downregulated",
            Self::Unchanged => "unchanged",
        }
    }

    /// Class balance of PerturbQA-like data: mostly "no change".
    fn draw_gold(rng: &mut SplitMix64) -> Self {
        let draw = rng.next_unit();
        if draw < 0.40 {
            Self::Unchanged
        } else if draw < 0.75 {
            Self::Down
        } else {
            Self::Up
        }
    }

    fn other_two(self) -> [Self; 2] {
        match self {
            Self::Up => [Self::Down, Self::Unchanged],
            Self::Down => [Self::Up, Self::Unchanged],
            Self::Unchanged => [Self::Up, Self::Down],
        }
    }
}

/// Placeholders in the sentence templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    PerturbedGene,
    TargetGene,
    CellLine,
    TranscriptionFactor,
    Pathway,
    Compartment,
    Direction,
    Answer,
}

impl Slot {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "P" => Self::PerturbedGene,
            "G" => Self::TargetGene,
            "C" => Self::CellLine,
            "TF" => Self::TranscriptionFactor,
            "PATH" => Self::Pathway,
            "ORG" => Self::Compartment,
            "DIR" => Self::Direction,
            "ANS" => Self::Answer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Piece {
    Literal(&'static str),
    Slot(Slot),
}

/// A template split once into literal text and slots, so rendering is just appending.
#[derive(Debug, Clone)]
struct Sentence {
    pieces: Vec<Piece>,
    /// Words separated by single spaces; slot values never contain spaces.
    word_count: u32,
}

impl Sentence {
    fn parse(template: &'static str) -> anyhow::Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let (literal, after_literal) = rest.split_at(open);
            if !literal.is_empty() {
                pieces.push(Piece::Literal(literal));
            }
            let close = after_literal
                .find('}')
                .with_context(|| format!("unclosed slot in template `{template}`"))?;
            let name = after_literal.get(1..close).unwrap_or_default();
            let slot = Slot::from_name(name)
                .with_context(|| format!("unknown slot `{name}` in template `{template}`"))?;
            pieces.push(Piece::Slot(slot));
            rest = after_literal.get(close + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest));
        }
        let word_count = template.split(' ').count() as u32;
        Ok(Self { pieces, word_count })
    }

    fn parse_all(templates: &[&'static str]) -> anyhow::Result<Vec<Self>> {
        templates
            .iter()
            .map(|template| Self::parse(template))
            .collect()
    }
}

/// Everything a template slot can be filled with for one trace.
struct SlotValues<'a> {
    perturbed_gene: &'a str,
    target_gene: &'a str,
    cell_line: &'a str,
    answer: AnswerClass,
}

/// Per-question facts shared by all its traces.
struct Question {
    id: String,
    prompt: String,
    perturbed_gene: &'static str,
    target_gene: &'static str,
    cell_line: &'static str,
    gold: AnswerClass,
    /// The wrong class the model leans to on this question, so errors partly agree with
    /// each other, as real systematic mistakes do.
    favourite_wrong: AnswerClass,
    /// 0 = trivial, 1 = very hard.
    difficulty: f64,
    labelled: bool,
}

struct SentenceBank {
    openings: Vec<Sentence>,
    background: Vec<Sentence>,
    hedges: Vec<Sentence>,
    towards_up: Vec<Sentence>,
    towards_down: Vec<Sentence>,
    towards_unchanged: Vec<Sentence>,
    conclusions: Vec<Sentence>,
    /// Short sentences of 1..=4 words (index = word count - 1), to hit the word budget exactly.
    fillers_by_length: [Vec<Sentence>; 4],
    final_answer: Sentence,
}

impl SentenceBank {
    fn new() -> anyhow::Result<Self> {
        let mut fillers_by_length: [Vec<Sentence>; 4] = Default::default();
        for filler in Sentence::parse_all(FILLER_TEMPLATES)? {
            let slot = (filler.word_count as usize).checked_sub(1);
            let bucket = slot
                .and_then(|index| fillers_by_length.get_mut(index))
                .context("filler templates must have 1 to 4 words")?;
            bucket.push(filler);
        }
        if fillers_by_length.iter().any(Vec::is_empty) {
            bail!("need filler templates of every length from 1 to 4 words");
        }
        Ok(Self {
            openings: Sentence::parse_all(OPENING_TEMPLATES)?,
            background: Sentence::parse_all(BACKGROUND_TEMPLATES)?,
            hedges: Sentence::parse_all(HEDGE_TEMPLATES)?,
            towards_up: Sentence::parse_all(TOWARDS_UP_TEMPLATES)?,
            towards_down: Sentence::parse_all(TOWARDS_DOWN_TEMPLATES)?,
            towards_unchanged: Sentence::parse_all(TOWARDS_UNCHANGED_TEMPLATES)?,
            conclusions: Sentence::parse_all(CONCLUSION_TEMPLATES)?,
            fillers_by_length,
            final_answer: Sentence::parse("Final answer: {ANS}")?,
        })
    }

    fn towards(&self, answer: AnswerClass) -> &[Sentence] {
        match answer {
            AnswerClass::Up => &self.towards_up,
            AnswerClass::Down => &self.towards_down,
            AnswerClass::Unchanged => &self.towards_unchanged,
        }
    }
}

fn append_sentence(
    text: &mut String,
    rng: &mut SplitMix64,
    sentence: &Sentence,
    values: &SlotValues<'_>,
) {
    if !text.is_empty() {
        text.push(' ');
    }
    for piece in &sentence.pieces {
        let value = match *piece {
            Piece::Literal(literal) => literal,
            Piece::Slot(Slot::PerturbedGene) => values.perturbed_gene,
            Piece::Slot(Slot::TargetGene) => values.target_gene,
            Piece::Slot(Slot::CellLine) => values.cell_line,
            Piece::Slot(Slot::TranscriptionFactor) => rng.pick(TRANSCRIPTION_FACTORS),
            Piece::Slot(Slot::Pathway) => rng.pick(PATHWAYS),
            Piece::Slot(Slot::Compartment) => rng.pick(COMPARTMENTS),
            Piece::Slot(Slot::Direction) => values.answer.direction_word(),
            Piece::Slot(Slot::Answer) => values.answer.answer_word(),
        };
        text.push_str(value);
    }
}

fn pick_sentence<'a>(rng: &mut SplitMix64, sentences: &'a [Sentence]) -> Option<&'a Sentence> {
    sentences.get(rng.below(sentences.len()))
}

/// Holds the PRNG and every reused buffer, so a trace costs no allocation after warm-up.
struct TraceGenerator<'a> {
    options: &'a GenOptions,
    rng: SplitMix64,
    bank: SentenceBank,
    /// Bijective walk over (perturbed, target, cell line) so ids do not repeat early.
    combination_stride: u64,
    combination_offset: u64,
    text: String,
    line: Vec<u8>,
    chosen_log_probs: Vec<f64>,
    /// The chosen log-probs already formatted and comma-separated, with each value's byte
    /// range: written once as `logprobs` and copied as the first entry of each
    /// `top_logprobs` list, so the two are equal byte for byte.
    formatted_log_probs: Vec<u8>,
    formatted_ranges: Vec<std::ops::Range<usize>>,
}

/// Number of distinct (perturbed gene, target gene, cell line) triples.
fn combination_count() -> u64 {
    let genes = GENE_SYMBOLS.len() as u64;
    genes * (genes - 1) * CELL_LINES.len() as u64
}

/// A stride coprime with the number of combinations, so `index * stride mod count` visits
/// every combination once before any repeats.
fn coprime_stride(count: u64, start: u64) -> u64 {
    let mut stride = (start % count.max(1)) | 1;
    while greatest_common_divisor(stride, count) != 1 {
        stride += 2;
    }
    stride
}

fn greatest_common_divisor(mut left: u64, mut right: u64) -> u64 {
    while right != 0 {
        (left, right) = (right, left % right);
    }
    left
}

impl<'a> TraceGenerator<'a> {
    fn new(options: &'a GenOptions) -> anyhow::Result<Self> {
        let mut rng = SplitMix64::new(options.seed);
        let count = combination_count();
        let combination_stride = coprime_stride(count, rng.next_u64() % count.max(1));
        let combination_offset = rng.next_u64() % count.max(1);
        Ok(Self {
            options,
            rng,
            bank: SentenceBank::new().context("the sentence templates are broken")?,
            combination_stride,
            combination_offset,
            text: String::new(),
            line: Vec::new(),
            chosen_log_probs: Vec::new(),
            formatted_log_probs: Vec::new(),
            formatted_ranges: Vec::new(),
        })
    }

    fn draw_question(&mut self, question_number: u64) -> Question {
        let count = combination_count();
        let index = (question_number - 1)
            .wrapping_mul(self.combination_stride)
            .wrapping_add(self.combination_offset)
            % count;
        let genes = GENE_SYMBOLS.len() as u64;
        let cell_line = CELL_LINES
            .get((index % CELL_LINES.len() as u64) as usize)
            .copied()
            .unwrap_or_default();
        let pair = index / CELL_LINES.len() as u64;
        let perturbed_index = pair / (genes - 1);
        // Skip the perturbed gene itself: a gene is never its own target.
        let mut target_index = pair % (genes - 1);
        if target_index >= perturbed_index {
            target_index += 1;
        }
        let perturbed_gene = GENE_SYMBOLS
            .get(perturbed_index as usize)
            .copied()
            .unwrap_or_default();
        let target_gene = GENE_SYMBOLS
            .get(target_index as usize)
            .copied()
            .unwrap_or_default();
        // Past one full walk, ids get a round suffix so they stay unique.
        let round = (question_number - 1) / count;
        let id = if round == 0 {
            format!("{perturbed_gene}|{target_gene}|{cell_line}")
        } else {
            format!("{perturbed_gene}|{target_gene}|{cell_line}|r{}", round + 1)
        };
        let prompt = format!(
            "Knockdown of {perturbed_gene} in {cell_line} cells. Is {target_gene} upregulated, downregulated, or unchanged? Answer with up, down or none."
        );
        let gold = AnswerClass::draw_gold(&mut self.rng);
        let [first_wrong, second_wrong] = gold.other_two();
        let favourite_wrong = if self.rng.chance(0.5) {
            first_wrong
        } else {
            second_wrong
        };
        // Skewed towards easy questions: most questions are answered reliably.
        let difficulty = self.rng.next_unit().powf(1.3);
        let labelled = self.rng.chance(self.options.labelled_question_fraction);
        Question {
            id,
            prompt,
            perturbed_gene,
            target_gene,
            cell_line,
            gold,
            favourite_wrong,
            difficulty,
            labelled,
        }
    }

    fn write_question(
        &mut self,
        question_number: u64,
        out: &mut dyn Write,
        stats: &mut GenStats,
    ) -> anyhow::Result<()> {
        let question = self.draw_question(question_number);
        if question.labelled {
            stats.labelled_questions += 1;
        }
        let trace_count = 1 + u64::from(self.options.samples_per_question);
        for trace_index in 0..trace_count {
            let greedy = trace_index == 0;
            let probability_correct = if greedy {
                // Greedy decoding follows the mode, which is right a little more often.
                let sampled = 0.97 - 0.75 * question.difficulty;
                sampled + (1.0 - sampled) * 0.3
            } else {
                0.97 - 0.75 * question.difficulty
            };
            let correct = self.rng.chance(probability_correct);
            let answer = if correct {
                question.gold
            } else if self.rng.chance(0.75) {
                question.favourite_wrong
            } else {
                let [first_wrong, second_wrong] = question.gold.other_two();
                if first_wrong == question.favourite_wrong {
                    second_wrong
                } else {
                    first_wrong
                }
            };
            if correct {
                stats.correct_traces += 1;
            }
            self.render_text(&question, answer, correct);
            self.draw_log_probs(&question, greedy, correct);
            self.build_line(&question, question_number, trace_index, answer);
            out.write_all(&self.line)
                .context("cannot write the generated traces")?;
            stats.bytes += self.line.len() as u64;
            stats.traces += 1;
        }
        Ok(())
    }

    /// Writes a chain of thought of exactly `tokens_per_trace` words into `self.text`.
    fn render_text(&mut self, question: &Question, answer: AnswerClass, correct: bool) {
        // Split borrows: sentences are read from the bank while the PRNG and text change.
        let Self {
            options,
            rng,
            bank,
            text,
            ..
        } = self;
        text.clear();
        let values = SlotValues {
            perturbed_gene: question.perturbed_gene,
            target_gene: question.target_gene,
            cell_line: question.cell_line,
            answer,
        };
        let mut words_left = options
            .tokens_per_trace
            .saturating_sub(bank.final_answer.word_count);
        let opening = pick_sentence(rng, &bank.openings);
        let conclusion = pick_sentence(rng, &bank.conclusions);
        let frame_words = opening.map_or(0, |sentence| sentence.word_count)
            + conclusion.map_or(0, |sentence| sentence.word_count);
        // Very short traces get fillers only: the frame would not fit.
        let has_frame = words_left >= frame_words;
        if has_frame {
            words_left -= frame_words;
            if let Some(opening) = opening {
                append_sentence(text, rng, opening, &values);
            }
            // Unsure traces hedge more, which also makes them differ more under ROUGE-L.
            let hedge_chance = 0.05 + 0.25 * question.difficulty + if correct { 0.0 } else { 0.15 };
            let lean_chance = 0.25;
            loop {
                let bucket: &[Sentence] = if rng.chance(hedge_chance) {
                    &bank.hedges
                } else if rng.chance(lean_chance) {
                    bank.towards(answer)
                } else {
                    &bank.background
                };
                let Some(sentence) = pick_sentence(rng, bucket) else {
                    break;
                };
                if sentence.word_count > words_left {
                    break;
                }
                words_left -= sentence.word_count;
                append_sentence(text, rng, sentence, &values);
            }
        }
        // Fillers of 1..=4 words close the gap exactly.
        while words_left > 0 {
            let longest = words_left.min(4) as usize;
            let bucket = bank
                .fillers_by_length
                .get(longest - 1)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(filler) = pick_sentence(rng, bucket) else {
                break;
            };
            words_left -= filler.word_count;
            append_sentence(text, rng, filler, &values);
        }
        if has_frame && let Some(conclusion) = conclusion {
            append_sentence(text, rng, conclusion, &values);
        }
        append_sentence(text, rng, &bank.final_answer, &values);
    }

    /// Draws one log-prob per word. Most tokens are near-certain; a share of "fork" tokens
    /// is uncertain. Hard questions and wrong answers have more and deeper forks, which is
    /// what makes perplexity (and CoCoA) rank errors above correct traces.
    fn draw_log_probs(&mut self, question: &Question, greedy: bool, correct: bool) {
        let wrong_penalty = if correct { 0.0 } else { 1.0 };
        let greedy_factor = if greedy { 0.8 } else { 1.0 };
        // Per-trace noise that does not depend on correctness keeps the signal realistic
        // (perplexity AUROC around 0.7, not a perfect detector).
        let trace_noise = (0.6 * self.rng.standard_normal()).exp();
        let fork_rate = (0.04 + 0.05 * question.difficulty + 0.02 * wrong_penalty)
            * trace_noise
            * greedy_factor;
        let fork_depth = 0.6 + 0.3 * question.difficulty + 0.15 * wrong_penalty;
        let certain_depth = 0.008 + 0.02 * question.difficulty;
        self.chosen_log_probs.clear();
        for _ in 0..self.options.tokens_per_trace {
            let depth = if self.rng.chance(fork_rate) {
                fork_depth
            } else {
                certain_depth
            };
            let log_prob = -self.rng.exponential(depth).clamp(SMALLEST_MAGNITUDE, 12.0);
            self.chosen_log_probs.push(log_prob);
        }
        self.formatted_log_probs.clear();
        self.formatted_ranges.clear();
        for &log_prob in &self.chosen_log_probs {
            if !self.formatted_log_probs.is_empty() {
                self.formatted_log_probs.push(b',');
            }
            let start = self.formatted_log_probs.len();
            push_log_prob(&mut self.formatted_log_probs, log_prob);
            self.formatted_ranges
                .push(start..self.formatted_log_probs.len());
        }
    }

    fn build_line(
        &mut self,
        question: &Question,
        question_number: u64,
        trace_index: u64,
        answer: AnswerClass,
    ) {
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"question_id\":\"");
        line.extend_from_slice(question.id.as_bytes());
        line.extend_from_slice(b"\",\"trace_id\":\"q");
        push_unsigned(line, question_number);
        if trace_index == 0 {
            line.extend_from_slice(b"-g\",\"greedy\":true");
        } else {
            line.extend_from_slice(b"-s");
            push_unsigned(line, trace_index);
            line.extend_from_slice(b"\",\"greedy\":false");
        }
        // Templates, symbols and cell lines hold no quote, backslash or control character
        // (checked by a test), so the strings need no JSON escaping.
        line.extend_from_slice(b",\"prompt\":\"");
        line.extend_from_slice(question.prompt.as_bytes());
        line.extend_from_slice(b"\",\"text\":\"");
        line.extend_from_slice(self.text.as_bytes());
        line.extend_from_slice(b"\",\"answer\":\"");
        line.extend_from_slice(answer.answer_word().as_bytes());
        // Tokens carry their leading space, as BPE tokenizers do, so they concatenate to the text.
        line.extend_from_slice(b"\",\"tokens\":[");
        for (index, word) in self.text.split(' ').enumerate() {
            if index == 0 {
                line.push(b'"');
            } else {
                line.extend_from_slice(b",\" ");
            }
            line.extend_from_slice(word.as_bytes());
            line.push(b'"');
        }
        line.extend_from_slice(b"],\"logprobs\":[");
        line.extend_from_slice(&self.formatted_log_probs);
        line.extend_from_slice(b"],\"top_logprobs\":[");
        let top_k = self.options.top_k;
        for (index, (&chosen, range)) in self
            .chosen_log_probs
            .iter()
            .zip(&self.formatted_ranges)
            .enumerate()
        {
            if index > 0 {
                line.push(b',');
            }
            line.push(b'[');
            line.extend_from_slice(
                self.formatted_log_probs
                    .get(range.clone())
                    .unwrap_or_default(),
            );
            // The alternatives share the probability mass the chosen token left, each
            // taking a random part of what remains, and always strictly below the previous
            // one (by more than the printed precision, so rounding cannot tie them).
            let mut mass_left = 1.0 - chosen.exp();
            let mut previous = chosen;
            let mut alternatives_left = top_k - 1;
            while alternatives_left > 0 {
                alternatives_left -= 1;
                let share = mass_left * (0.35 + 0.5 * self.rng.next_unit());
                mass_left -= share;
                let ceiling = previous - (0.01 * previous.abs()).max(0.002);
                let alternative = share.max(1e-30).ln().min(ceiling).max(-LOWEST_LOG_PROB);
                line.push(b',');
                push_log_prob(line, alternative);
                previous = alternative;
            }
            line.push(b']');
        }
        line.push(b']');
        if question.labelled {
            line.extend_from_slice(b",\"label\":\"");
            line.extend_from_slice(question.gold.answer_word().as_bytes());
            line.push(b'"');
        }
        line.extend_from_slice(b"}\n");
    }
}

/// Below this a log-prob would print as 0, which real dumps rarely contain.
const SMALLEST_MAGNITUDE: f64 = 1e-6;
/// Far above the ≤ −1e4 sentinel range of SPEC §3, so every value is valid, and below
/// anything 100 strictly decreasing alternatives can reach, so the clamp never causes ties.
const LOWEST_LOG_PROB: f64 = 999.0;
/// Real dumps print log-probs with a handful of significant digits, e.g. `-0.01234`.
const SIGNIFICANT_DIGITS: u32 = 5;

/// Appends a negative log-prob with `SIGNIFICANT_DIGITS` significant digits, trailing zeros
/// trimmed. Hand-rolled because `format!` cannot do significant digits and this is the
/// generator's hottest path (about 1,500 numbers per trace). `cargo xtask` runs unoptimised,
/// so the characters are packed into one integer, right to left, and appended with a single
/// copy instead of a call per byte.
fn push_log_prob(line: &mut Vec<u8>, log_prob: f64) {
    const SMALLEST_FULL_MANTISSA: f64 = 10_000.0;
    const _: () = assert!(
        SIGNIFICANT_DIGITS == 5,
        "SMALLEST_FULL_MANTISSA is 10^(digits - 1)"
    );
    let magnitude = (-log_prob).clamp(SMALLEST_MAGNITUDE, LOWEST_LOG_PROB);
    let mut scaled = magnitude;
    let mut decimals = 0u32;
    while scaled < SMALLEST_FULL_MANTISSA {
        scaled *= 10.0;
        decimals += 1;
    }
    let mut mantissa = scaled.round() as u64;
    // At most "-999." plus 11 decimals (for 1e-6 at 5 digits) = 16 bytes: fits in a u128.
    let mut packed: u128 = 0;
    let mut length = 0u32;
    let mut in_trailing_zeros = true;
    // Decimal positions from the last one back to the first after the point, which is
    // always written so whole numbers still print as "-1.0". (`while`, not a reversed
    // range: unoptimised builds spend more time in the iterator than in the digits.)
    let mut position = decimals;
    while position > 0 {
        position -= 1;
        let digit = (mantissa % 10) as u8;
        mantissa /= 10;
        if in_trailing_zeros && digit == 0 && position > 0 {
            continue;
        }
        in_trailing_zeros = false;
        packed |= u128::from(b'0' + digit) << (8 * length);
        length += 1;
    }
    packed |= u128::from(b'.') << (8 * length);
    length += 1;
    loop {
        packed |= u128::from(b'0' + (mantissa % 10) as u8) << (8 * length);
        mantissa /= 10;
        length += 1;
        if mantissa == 0 {
            break;
        }
    }
    packed |= u128::from(b'-') << (8 * length);
    length += 1;
    let bytes = packed.to_be_bytes();
    line.extend_from_slice(
        bytes
            .get(bytes.len() - length as usize..)
            .unwrap_or_default(),
    );
}

fn push_unsigned(line: &mut Vec<u8>, mut value: u64) {
    let start = line.len();
    loop {
        line.push(b'0' + (value % 10) as u8);
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if let Some(digits) = line.get_mut(start..) {
        digits.reverse();
    }
}

pub(crate) const CELL_LINES: &[&str] = &["K562", "RPE1", "HepG2", "Jurkat"];

/// Real human gene symbols, weighted towards the ER / proteostasis genes PerturbQA is full of.
// Skipped by rustfmt, which would otherwise move the group comments onto the wrong lines.
#[rustfmt::skip]
const GENE_SYMBOLS: &[&str] = &[
    // ER stress, UPR, ER translocation and folding
    "ATF4", "ATF6", "XBP1", "ERN1", "EIF2AK3", "DDIT3", "HSPA5", "HSP90B1", "PDIA6", "PDIA4",
    "PDIA3", "CALR", "CANX", "SEL1L", "SYVN1", "DNAJB9", "HERPUD1", "SLC35B1", "SEC61A1",
    "SEC61B", "SRPRB", "SSR1", "SSR2", "EMC1", "EMC3", "EMC4", "EMC6", "UFM1", "UFL1", "DDRGK1",
    // transcription factors
    "MYC", "MAX", "TP53", "JUN", "FOS", "ATF3", "CEBPB", "NFE2L2", "KLF4", "GATA1", "TAL1",
    "SPI1", "RUNX1", "STAT3", "STAT5A", "NFKB1", "RELA", "HIF1A", "SREBF1", "SREBF2", "E2F1",
    "YY1", "CTCF", "ZNF143",
    // translation
    "RPL3", "RPL5", "RPL11", "RPS6", "RPS19", "EIF2S1", "EIF4E", "EIF4G1", "EEF2", "EIF3A",
    // proteasome and ERAD machinery
    "PSMA1", "PSMB5", "PSMD1", "PSMC3", "UBA1", "VCP", "NPLOC4", "UFD1",
    // chaperones
    "HSPA8", "HSPA1A", "HSP90AA1", "DNAJA1", "CCT2", "CCT4",
    // mitochondria
    "SDHA", "NDUFS1", "COX4I1", "ATP5F1A", "TFAM", "POLG", "MRPL12", "TOMM40", "TIMM23", "PINK1",
    // cell cycle
    "CDK1", "CDK2", "CDK4", "CCNB1", "CCND1", "CDKN1A", "CDKN2A", "PLK1", "AURKA", "AURKB",
    "BUB1", "MAD2L1", "CDC20",
    // DNA repair
    "BRCA1", "BRCA2", "ATM", "ATR", "CHEK1", "CHEK2", "RAD51", "PARP1", "XRCC5", "MSH2",
    // splicing
    "SF3B1", "U2AF1", "SRSF1", "SRSF2", "HNRNPA1", "SNRPD1", "PRPF8",
    // signalling
    "KRAS", "NRAS", "BRAF", "MAP2K1", "MAPK1", "MAPK3", "PIK3CA", "AKT1", "MTOR", "RPTOR",
    "RICTOR", "TSC2", "PTEN", "GSK3B", "CTNNB1", "NOTCH1", "SMAD4", "TGFBR2", "JAK2", "SOCS3",
    // metabolism
    "HMGCR", "LDLR", "FASN", "ACACA", "SCD", "INSIG1", "HK2", "PKM", "LDHA", "G6PD", "SLC2A1",
    // Golgi and trafficking
    "COPB1", "COPA", "ARF1", "GBF1", "SEC23B", "SEC24C", "TRAPPC3", "RAB1A", "GOLGA2",
    // autophagy and lysosome
    "ATG5", "ATG7", "BECN1", "SQSTM1", "MAP1LC3B", "LAMP1", "TFEB",
    // apoptosis
    "BCL2", "BCL2L1", "MCL1", "BAX", "BAK1", "CASP3", "CASP9", "XIAP", "BBC3", "PMAIP1",
    // chromatin
    "EZH2", "SUZ12", "KMT2A", "KDM1A", "HDAC1", "HDAC3", "EP300", "CREBBP", "BRD4", "SMARCA4",
    "ARID1A", "DNMT1",
    // erythroid and iron (K562)
    "HBG1", "HBG2", "GYPA", "TFRC", "FTH1", "FTL", "SLC25A37", "ALAS2",
    // redox
    "MTHFD1", "TXNRD1", "GPX4", "SOD1", "SOD2",
];

const TRANSCRIPTION_FACTORS: &[&str] = &[
    "ATF4", "ATF6", "XBP1", "DDIT3", "MYC", "TP53", "NFE2L2", "CEBPB", "SREBF2", "HIF1A", "NFKB1",
    "E2F1", "STAT3", "TFEB", "KLF4", "JUN", "GATA1", "YY1",
];

const PATHWAYS: &[&str] = &[
    "UPR",
    "ERAD",
    "mTORC1",
    "MAPK",
    "PI3K-AKT",
    "NF-kB",
    "p53",
    "Wnt",
    "JAK-STAT",
    "Hippo",
    "TGF-beta",
    "Notch",
    "autophagy",
    "ISR",
    "SREBP",
];

const COMPARTMENTS: &[&str] = &[
    "ER",
    "Golgi",
    "mitochondria",
    "nucleus",
    "cytoplasm",
    "lysosome",
    "endosome",
];

const OPENING_TEMPLATES: &[&str] = &[
    "Let me think about how knockdown of {P} affects {G} in {C} cells.",
    "We need to predict whether {G} expression changes when {P} is knocked down in {C} cells.",
    "First, consider what {P} does and whether it plausibly regulates {G}.",
    "The question asks about the effect of a {P} knockdown on {G} expression in {C} cells.",
];

const BACKGROUND_TEMPLATES: &[&str] = &[
    "{P} encodes a protein that localizes to the {ORG} and participates in {PATH} signaling.",
    "Loss of {P} could perturb protein folding in the ER and trigger the unfolded protein response.",
    "The transcription factor {TF} is a known regulator of {G} and responds to stress in the {ORG}.",
    "In {C} cells, the {PATH} pathway is highly active and may buffer this perturbation.",
    "When misfolded proteins accumulate, IRE1 splices XBP1 mRNA and PERK phosphorylates eIF2 alpha.",
    "{G} is broadly expressed and its promoter contains binding sites for {TF}.",
    "CRISPRi knockdown in {C} cells usually reduces the target transcript by more than eighty percent.",
    "Perturbing the {ORG} often activates {TF} within hours, which reshapes the transcriptome.",
    "{P} and {G} are not in the same complex, but both connect to the {PATH} network.",
    "Single-cell screens show that many knockdowns change only a handful of genes.",
    "{G} has been reported as a downstream target in several {PATH} studies.",
    "ATF4 induces genes for amino acid synthesis and the stress response, including DDIT3.",
    "The ER chaperone HSPA5 is released from sensors like ATF6 when unfolded proteins build up.",
    "Reduced translation through eIF2 alpha phosphorylation lowers the load on the {ORG}.",
    "{C} cells depend strongly on {PATH} signaling for growth.",
    "Compensation by paralogs could limit the effect of losing {P}.",
    "Expression of {G} is also sensitive to cell cycle state and proliferation rate.",
    "Loss of {P} may also alter lipid synthesis, which feeds back on {TF} activity.",
    "If the knockdown causes proteotoxic stress, chaperone genes and ERAD components tend to rise.",
    "The effect on {G} would be indirect, through {TF} or the {PATH} pathway.",
];

const HEDGE_TEMPLATES: &[&str] = &[
    "However, the evidence linking {P} to {G} is indirect.",
    "It is also possible that compensatory mechanisms mask any change.",
    "Wait, I should reconsider the role of {TF} here.",
    "I am not completely sure about this step.",
    "On the other hand, {C} cells may respond differently from other lines.",
    "This part of the reasoning is uncertain.",
];

const TOWARDS_UP_TEMPLATES: &[&str] = &[
    "This would be expected to activate {TF}, which induces {G} expression.",
    "Stress from losing {P} tends to increase transcription of {G} as a compensatory response.",
    "So {G} is likely induced as part of the adaptive program.",
];

const TOWARDS_DOWN_TEMPLATES: &[&str] = &[
    "Reduced {TF} activity would lower transcription of {G}.",
    "Losing {P} likely slows growth, which tends to decrease expression of {G}.",
    "So {G} is likely repressed as translation and proliferation slow down.",
];

const TOWARDS_UNCHANGED_TEMPLATES: &[&str] = &[
    "There is no clear regulatory link between {P} and {G}, so expression should stay stable.",
    "Most knockdowns leave unrelated genes like {G} unaffected.",
    "The {PATH} pathway probably absorbs the perturbation before it reaches {G}.",
];

const CONCLUSION_TEMPLATES: &[&str] = &[
    "Therefore, {G} is most likely {DIR} after knockdown of {P}.",
    "Putting this together, I expect {G} to be {DIR} in {C} cells.",
    "Overall, {G} is probably {DIR}.",
];

const FILLER_TEMPLATES: &[&str] = &[
    "Hmm.",
    "Okay.",
    "Right.",
    "Let's see.",
    "Makes sense.",
    "Let me recheck.",
    "That seems plausible.",
    "This seems reasonable enough.",
    "Let me double check.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn small_options() -> GenOptions {
        GenOptions {
            amount: GenAmount::Questions(5),
            samples_per_question: 3,
            tokens_per_trace: 40,
            top_k: 4,
            labelled_question_fraction: 0.5,
            seed: 7,
        }
    }

    fn generate_to_bytes(options: &GenOptions) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        generate(options, &mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_does_not() -> anyhow::Result<()> {
        let options = small_options();
        let first = generate_to_bytes(&options)?;
        let second = generate_to_bytes(&options)?;
        assert_eq!(first, second);
        let other = generate_to_bytes(&GenOptions { seed: 8, ..options })?;
        assert_ne!(first, other);
        Ok(())
    }

    #[test]
    fn every_trace_has_exactly_the_requested_tokens_and_top_k() -> anyhow::Result<()> {
        for tokens_per_trace in [3, 4, 5, 17, 40, 300] {
            let options = GenOptions {
                tokens_per_trace,
                ..small_options()
            };
            let bytes = generate_to_bytes(&options)?;
            let text = String::from_utf8(bytes)?;
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 5 * 4);
            for line in lines {
                let logprobs = section(line, "\"logprobs\":[", "]")?;
                assert_eq!(logprobs.split(',').count(), tokens_per_trace as usize);
                let tokens = section(line, "\"tokens\":[", "]")?;
                assert_eq!(tokens.split("\",\"").count(), tokens_per_trace as usize);
                let top = section(line, "\"top_logprobs\":[[", "]]")?;
                for (chosen, list) in logprobs.split(',').zip(top.split("],[")) {
                    let values: Vec<f64> =
                        list.split(',').map(str::parse).collect::<Result<_, _>>()?;
                    assert_eq!(values.len(), 4);
                    assert_eq!(list.split(',').next(), Some(chosen));
                    assert!(
                        values
                            .windows(2)
                            .all(|pair| matches!(pair, [higher, lower] if lower < higher)),
                        "{list}"
                    );
                    assert!(values.iter().all(|value| *value <= 0.0));
                }
                assert!(line.contains("Final answer: "));
            }
        }
        Ok(())
    }

    fn section<'a>(line: &'a str, start: &str, end: &str) -> anyhow::Result<&'a str> {
        let after = line.split_once(start).context("section start missing")?.1;
        Ok(after.split_once(end).context("section end missing")?.0)
    }

    #[test]
    fn size_mode_stops_just_past_the_target() -> anyhow::Result<()> {
        let options = GenOptions {
            amount: GenAmount::Bytes(200_000),
            ..small_options()
        };
        let mut bytes = Vec::new();
        let stats = generate(&options, &mut bytes)?;
        assert_eq!(stats.bytes, bytes.len() as u64);
        assert!(stats.bytes >= 200_000);
        assert!(stats.bytes < 200_000 + 4 * 10_000);
        Ok(())
    }

    #[test]
    fn fixed_strings_need_no_json_escaping() {
        let lists: [&[&str]; 11] = [
            CELL_LINES,
            GENE_SYMBOLS,
            TRANSCRIPTION_FACTORS,
            PATHWAYS,
            COMPARTMENTS,
            OPENING_TEMPLATES,
            BACKGROUND_TEMPLATES,
            HEDGE_TEMPLATES,
            CONCLUSION_TEMPLATES,
            FILLER_TEMPLATES,
            TOWARDS_UP_TEMPLATES,
        ];
        let more: [&[&str]; 2] = [TOWARDS_DOWN_TEMPLATES, TOWARDS_UNCHANGED_TEMPLATES];
        for text in lists.iter().chain(more.iter()).flat_map(|list| list.iter()) {
            assert!(
                text.chars()
                    .all(|c| c != '"' && c != '\\' && !c.is_control()),
                "{text}"
            );
        }
        // Slot values must be single words, or the word count of a sentence would be off.
        for value in GENE_SYMBOLS
            .iter()
            .chain(TRANSCRIPTION_FACTORS)
            .chain(PATHWAYS)
            .chain(COMPARTMENTS)
            .chain(CELL_LINES)
        {
            assert!(!value.contains(' '), "{value}");
        }
    }

    #[test]
    fn log_probs_print_with_a_few_significant_digits() {
        let cases = [
            (-0.012_341_9, "-0.012342"),
            (-2.5, "-2.5"),
            (-1.0, "-1.0"),
            (-0.000_000_01, "-0.000001"),
            (-12.345_67, "-12.346"),
            (-0.999_999_9, "-1.0"),
        ];
        for (value, expected) in cases {
            let mut line = Vec::new();
            push_log_prob(&mut line, value);
            assert_eq!(String::from_utf8_lossy(&line), expected);
        }
    }

    #[test]
    fn question_ids_do_not_repeat_within_one_walk() -> anyhow::Result<()> {
        let options = GenOptions {
            amount: GenAmount::Questions(3000),
            samples_per_question: 0,
            tokens_per_trace: 3,
            top_k: 2,
            ..small_options()
        };
        let text = String::from_utf8(generate_to_bytes(&options)?)?;
        let ids: std::collections::HashSet<&str> = text
            .lines()
            .map(|line| section(line, "\"question_id\":\"", "\""))
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(ids.len(), 3000);
        Ok(())
    }
}
