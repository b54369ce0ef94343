//! A pickle reader that never executes anything.
//!
//! torch.save writes its object tree as a pickle (`data.pkl` inside a zip). Loading a pickle with Python runs
//! whatever callables it names, so plumbline does not load it: this module walks the opcodes with a
//! symbolic stack machine. Every global the stream references (GLOBAL, STACK_GLOBAL, INST, EXT*) is checked
//! against an allowlist modelled on torch's `weights_only` unpickler *at the opcode*, before anything else
//! looks at values; one reference outside the list refuses the whole file. Allowlisted callables are never
//! called either: REDUCE on `torch._utils._rebuild_tensor_v2` yields a tensor description (dtype, shape,
//! storage key), on `collections.OrderedDict` a dict, and on anything else an opaque value.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::compat;
use crate::error::CheckpointError;

/// The globals a checkpoint may reference: exactly torch's weights-only allowlist
/// (`torch._weights_only_unpickler._get_allowed_globals()` of torch 2.15.0, 144 entries), as
/// (module, name) pairs. Being on it means "may be referenced", not "is called": plumbline calls nothing
/// and describes only what it understands (see `Machine::call`).
pub const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("builtins", "set"),
    ("collections", "Counter"),
    ("collections", "OrderedDict"),
    ("torch", "BFloat16Storage"),
    ("torch", "BFloat16Tensor"),
    ("torch", "BoolStorage"),
    ("torch", "BoolTensor"),
    ("torch", "ByteStorage"),
    ("torch", "ByteTensor"),
    ("torch", "CharStorage"),
    ("torch", "CharTensor"),
    ("torch", "ComplexDoubleStorage"),
    ("torch", "ComplexFloatStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "DoubleTensor"),
    ("torch", "FloatStorage"),
    ("torch", "FloatTensor"),
    ("torch", "HalfStorage"),
    ("torch", "HalfTensor"),
    ("torch", "IntStorage"),
    ("torch", "IntTensor"),
    ("torch", "LongStorage"),
    ("torch", "LongTensor"),
    ("torch", "QInt32Storage"),
    ("torch", "QInt8Storage"),
    ("torch", "QUInt2x4Storage"),
    ("torch", "QUInt4x2Storage"),
    ("torch", "QUInt8Storage"),
    ("torch", "ShortStorage"),
    ("torch", "ShortTensor"),
    ("torch", "Size"),
    ("torch", "Tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch", "bcomplex32"),
    ("torch", "bfloat16"),
    ("torch", "bits16"),
    ("torch", "bits1x8"),
    ("torch", "bits2x4"),
    ("torch", "bits4x2"),
    ("torch", "bits8"),
    ("torch", "bool"),
    ("torch", "complex128"),
    ("torch", "complex32"),
    ("torch", "complex64"),
    ("torch.cuda", "BFloat16Storage"),
    ("torch.cuda", "BFloat16Tensor"),
    ("torch.cuda", "BoolStorage"),
    ("torch.cuda", "BoolTensor"),
    ("torch.cuda", "ByteStorage"),
    ("torch.cuda", "ByteTensor"),
    ("torch.cuda", "CharStorage"),
    ("torch.cuda", "CharTensor"),
    ("torch.cuda", "ComplexDoubleStorage"),
    ("torch.cuda", "ComplexFloatStorage"),
    ("torch.cuda", "DoubleStorage"),
    ("torch.cuda", "DoubleTensor"),
    ("torch.cuda", "FloatStorage"),
    ("torch.cuda", "FloatTensor"),
    ("torch.cuda", "HalfStorage"),
    ("torch.cuda", "HalfTensor"),
    ("torch.cuda", "IntStorage"),
    ("torch.cuda", "IntTensor"),
    ("torch.cuda", "LongStorage"),
    ("torch.cuda", "LongTensor"),
    ("torch.cuda", "ShortStorage"),
    ("torch.cuda", "ShortTensor"),
    ("torch.cuda.sparse", "BFloat16Tensor"),
    ("torch.cuda.sparse", "ByteTensor"),
    ("torch.cuda.sparse", "CharTensor"),
    ("torch.cuda.sparse", "DoubleTensor"),
    ("torch.cuda.sparse", "FloatTensor"),
    ("torch.cuda.sparse", "HalfTensor"),
    ("torch.cuda.sparse", "IntTensor"),
    ("torch.cuda.sparse", "LongTensor"),
    ("torch.cuda.sparse", "ShortTensor"),
    ("torch", "device"),
    ("torch", "float16"),
    ("torch", "float32"),
    ("torch", "float4_e2m1fn_x2"),
    ("torch", "float64"),
    ("torch", "float8_e4m3fn"),
    ("torch", "float8_e4m3fnuz"),
    ("torch", "float8_e5m2"),
    ("torch", "float8_e5m2fnuz"),
    ("torch", "float8_e8m0fnu"),
    ("torch", "int1"),
    ("torch", "int16"),
    ("torch", "int2"),
    ("torch", "int3"),
    ("torch", "int32"),
    ("torch", "int4"),
    ("torch", "int5"),
    ("torch", "int6"),
    ("torch", "int64"),
    ("torch", "int7"),
    ("torch", "int8"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "per_channel_affine"),
    ("torch", "per_channel_affine_float_qparams"),
    ("torch", "per_channel_symmetric"),
    ("torch", "per_tensor_affine"),
    ("torch", "per_tensor_symmetric"),
    ("torch", "qint32"),
    ("torch", "qint8"),
    ("torch", "quint2x4"),
    ("torch", "quint4x2"),
    ("torch", "quint8"),
    ("torch.serialization", "_get_layout"),
    ("torch.sparse", "BFloat16Tensor"),
    ("torch.sparse", "ByteTensor"),
    ("torch.sparse", "CharTensor"),
    ("torch.sparse", "DoubleTensor"),
    ("torch.sparse", "FloatTensor"),
    ("torch.sparse", "HalfTensor"),
    ("torch.sparse", "IntTensor"),
    ("torch.sparse", "LongTensor"),
    ("torch.sparse", "ShortTensor"),
    ("torch.storage", "TypedStorage"),
    ("torch.storage", "UntypedStorage"),
    ("torch", "uint1"),
    ("torch", "uint16"),
    ("torch", "uint2"),
    ("torch", "uint3"),
    ("torch", "uint32"),
    ("torch", "uint4"),
    ("torch", "uint5"),
    ("torch", "uint6"),
    ("torch", "uint64"),
    ("torch", "uint7"),
    ("torch", "uint8"),
];

/// Exact (module, name) pairs: `("torch", "_utils._rebuild_tensor_v2")` is not `torch._utils._rebuild_tensor_v2`.
pub fn is_allowed(module: &str, name: &str) -> bool {
    ALLOWED_GLOBALS
        .iter()
        .any(|&(m, n)| m == module && n == name)
}

/// A tensor as a pickle describes it: no data, only where the data lives and its layout.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub dtype: String,
    pub shape: Vec<u64>,
    pub storage_key: String,
    /// The storage's own dtype and element count, as its persistent id gives them (`uint8` and
    /// bytes for an `UntypedStorage`): what the archive's record size is checked against.
    pub storage_dtype: String,
    pub storage_numel: u64,
    /// Attributes set on the tensor object (`_rebuild_from_type_v2`), as plain values.
    pub attributes: Vec<(String, Value)>,
}

/// An object of a declared global, described by what the pickle passes to it.
#[derive(Debug)]
pub struct Object {
    pub class: (String, String),
    /// In a cell so that dropping a [`Pickle`] can empty it (a chain of objects nested in each
    /// other's arguments is then released one level at a time).
    pub args: RefCell<Vec<Value>>,
    pub state: RefCell<Option<Value>>,
}

/// A storage as a persistent id names it: its dtype, key and element count.
#[derive(Debug, Clone)]
pub struct StorageRef {
    pub dtype: String,
    pub key: String,
    pub numel: u64,
}

/// How a stream's persistent ids are read: torch's zip archives write
/// `('storage', class, key, location, numel)`, legacy torch.save files add a sixth item (a view or
/// None), and a plain pickle has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    Zip,
    Legacy,
    None,
}

/// What a stream may reference beyond the built-in allowlist, and how its persistent ids read.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub ids: Ids,
    /// Globals the project declared safe (`[checkpoints] safe-globals`), as `module.Name`: matched
    /// on the joined text, as torch matches `add_safe_globals` entries.
    pub declared: &'a [String],
    /// A decimal-conversion budget shared with other streams of one file (a legacy file's five
    /// pickles); without one, each stream has its own [`MAX_DECIMAL_WORK`].
    pub decimal: Option<&'a std::cell::Cell<u64>>,
}

impl Rules<'_> {
    pub const ZIP: Rules<'static> = Rules {
        ids: Ids::Zip,
        declared: &[],
        decimal: None,
    };
}

/// A value on the symbolic stack. Lists and dicts are shared (pickle mutates them after memoizing).
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64, kept as its digits.
    BigInt(Rc<str>),
    Float(f64),
    /// Strings and bytes are shared, not copied, when DUP or a memo GET repeats them.
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<Vec<Value>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Set(Rc<RefCell<Vec<Value>>>),
    /// A reference to an allowlisted global (a class or function), never resolved to code.
    Global(Rc<(String, String)>),
    /// The result of BINPERSID on torch's ('storage', type, key, location, numel[, view]) tuple.
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// The result of "calling" an allowlisted global plumbline does not describe.
    Opaque(Rc<String>),
    /// An instance of a global the project declared safe: its class, the arguments it was
    /// created with and the state BUILD gave it, kept as values (never constructed).
    Object(Rc<Object>),
    Mark,
}

/// Dropping a value deeply nested by a hostile pickle (a million TUPLE1s) must not recurse a million
/// times: children of uniquely owned containers are moved to a worklist and dropped one level at a time.
impl Drop for Value {
    fn drop(&mut self) {
        let mut work = Vec::new();
        take_children(self, &mut work);
        while let Some(mut v) = work.pop() {
            take_children(&mut v, &mut work);
        }
    }
}

/// Tuples and declared objects can nest deeply while uniquely owned: lists, dicts and sets are
/// tracked by the machine and emptied one at a time when the [`Pickle`] is dropped (objects are
/// tracked too, and emptied there).
fn take_children(v: &mut Value, out: &mut Vec<Value>) {
    match v {
        Value::Tuple(rc) => {
            if let Some(items) = Rc::get_mut(rc) {
                out.append(items);
            }
        }
        Value::Object(rc) => {
            if let Some(o) = Rc::get_mut(rc) {
                out.append(o.args.get_mut());
                out.extend(o.state.get_mut().take());
            }
        }
        _ => {}
    }
}

fn new_list_untracked(v: Vec<Value>) -> Value {
    Value::List(Rc::new(RefCell::new(v)))
}

fn new_dict_untracked(v: Vec<(Value, Value)>) -> Value {
    Value::Dict(Rc::new(RefCell::new(v)))
}

/// Storage class name (`torch.FloatStorage`) to dtype name (`float32`). `UntypedStorage` holds bytes.
pub fn storage_dtype(class: &str) -> Option<&'static str> {
    Some(match class {
        "FloatStorage" => "float32",
        "DoubleStorage" => "float64",
        "HalfStorage" => "float16",
        "BFloat16Storage" => "bfloat16",
        "LongStorage" => "int64",
        "IntStorage" => "int32",
        "ShortStorage" => "int16",
        "CharStorage" => "int8",
        "ByteStorage" | "UntypedStorage" => "uint8",
        "BoolStorage" => "bool",
        "ComplexFloatStorage" => "complex64",
        "ComplexDoubleStorage" => "complex128",
        _ => return None,
    })
}

/// Bytes per element of a torch dtype name: every dtype on torch's weights-only allowlist
/// (`torch.<dtype>.itemsize` of torch 2.15; sub-byte and bit dtypes take a byte per element as
/// torch stores them). Quantized dtypes are absent: plumbline does not read quantized tensors.
/// safetensors' own names have their widths in `safetensors::dtype_info`.
pub fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "complex128" => 16,
        "float64" | "int64" | "uint64" | "complex64" => 8,
        "float32" | "int32" | "uint32" | "complex32" | "bcomplex32" => 4,
        "float16" | "bfloat16" | "int16" | "uint16" | "bits16" => 2,
        "int8" | "uint8" | "bool" | "float8_e4m3fn" | "float8_e4m3fnuz" | "float8_e5m2"
        | "float8_e5m2fnuz" | "float8_e8m0fnu" | "float4_e2m1fn_x2" | "bits8" | "bits1x8"
        | "bits2x4" | "bits4x2" | "int1" | "int2" | "int3" | "int4" | "int5" | "int6" | "int7"
        | "uint1" | "uint2" | "uint3" | "uint4" | "uint5" | "uint6" | "uint7" => 1,
        _ => return None,
    })
}

/// Quantized dtypes and their storage classes: allowlisted by torch, not read by plumbline.
fn quantized(name: &str) -> bool {
    matches!(
        name,
        "qint8" | "quint8" | "qint32" | "quint4x2" | "quint2x4"
    ) || (name.starts_with('Q') && name.ends_with("Storage"))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    entry: &'a str,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Every mutable container created, so reference cycles (a list appended to itself) can be broken
    /// when the values are no longer needed: see [`Pickle`].
    containers: Vec<Value>,
    /// The end of the current FRAME (protocol 4+), while the parse is inside one: see [`Machine::take`].
    frame_end: Option<usize>,
    /// Values copied so far by opcodes whose cost grows with their operands (`set(list)`): with the
    /// input size it bounds the work a hostile pickle can ask for.
    work: u64,
    /// Steps left for turning LONG1/LONG4 integers into decimal text.
    decimal_left: u64,
    rules: Rules<'a>,
    /// Set when a read ran past the end of `data`: the stream may go on in bytes not yet read.
    starved: bool,
    /// Every storage a persistent id named, in order.
    storages: Vec<Rc<StorageRef>>,
    /// Declared globals referenced so far.
    declared: std::collections::BTreeSet<String>,
    /// Recording mode ([`referenced_globals`]): every global referenced, none refused.
    record: Option<Vec<String>>,
    /// The protocol of the last PROTO opcode (0 before one), as CPython's unpickler keeps it.
    proto: u8,
}

/// The value a pickle describes. Dropping it clears every list, dict and set the pickle created,
/// which breaks any reference cycle a hostile pickle built (each cycle passes through a mutable
/// container), so nothing leaks however many files a process reads.
pub struct Pickle {
    pub root: Value,
    /// Every storage the stream's persistent ids named, in order (a legacy file's data section
    /// lists them by key).
    pub storages: Vec<Rc<StorageRef>>,
    /// The declared globals the stream referenced, as `module.Name`, sorted.
    pub declared: Vec<String>,
    containers: Vec<Value>,
}

impl std::fmt::Debug for Pickle {
    /// Not the tree: a hostile pickle's values can be cyclic.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pickle({} containers)", self.containers.len())
    }
}

impl Drop for Pickle {
    fn drop(&mut self) {
        clear_all(&mut self.containers);
    }
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        clear_all(&mut self.containers);
    }
}

fn clear_all(containers: &mut Vec<Value>) {
    for c in containers.drain(..) {
        match &c {
            Value::List(l) | Value::Set(l) => {
                let items = std::mem::take(&mut *l.borrow_mut());
                drop(items);
            }
            Value::Dict(d) => {
                let items = std::mem::take(&mut *d.borrow_mut());
                drop(items);
            }
            Value::Object(o) => {
                let state = o.state.borrow_mut().take();
                drop(state);
                let args = std::mem::take(&mut *o.args.borrow_mut());
                drop(args);
            }
            _ => {}
        }
    }
}

/// Largest number of elements one opcode may announce (strings, bytes); the input bounds it anyway.
const MAX_STACK: usize = 1 << 20;

/// Values and bytes that opcodes with a cost proportional to their operands (`set(list)`,
/// `_codecs.encode`, storage keys, tensor shapes) may copy in one pickle, in all.
const MAX_WORK: u64 = 1 << 26;

/// Steps of decimal conversion for big integers in one pickle (about a second); beyond it they are
/// kept as `<int of N bytes>`.
pub const MAX_DECIMAL_WORK: u64 = 1 << 30;

/// Python prints an int in decimal only up to 4300 digits (`sys.int_info.default_max_str_digits`);
/// beyond that plumbline keeps `<int of N bytes>`, so a hostile LONG4 costs linear time, not quadratic.
const MAX_DECIMAL_BYTES: usize = 1785;

/// Read a whole pickle stream of a torch archive. Returns the value at STOP. `entry` names the
/// stream in errors (`archive/data.pkl`).
pub fn read(data: &[u8], entry: &str) -> Result<Pickle, CheckpointError> {
    read_with(data, entry, Rules::ZIP)
}

/// Read a whole pickle stream under `rules`: bytes after its STOP are refused.
pub fn read_with(data: &[u8], entry: &str, rules: Rules) -> Result<Pickle, CheckpointError> {
    let (pickle, end) = read_prefix(data, entry, rules).map_err(|e| match e {
        Prefix::Bad(e) => e,
        Prefix::Starved(e) => e,
    })?;
    // torch.save writes one pickle per record; bytes after STOP are a second stream that torch never
    // reads and another reader might.
    if end != data.len() {
        return Err(CheckpointError::Ambiguous(format!(
            "{} bytes follow the pickle's STOP at byte {} of {entry}",
            data.len() - end,
            end - 1
        )));
    }
    Ok(pickle)
}

/// Why a pickle at the start of a buffer could not be read.
#[derive(Debug)]
pub enum Prefix {
    /// The stream ran past the end of the buffer: with more bytes it might read (the error says
    /// what was missing, for when there are no more).
    Starved(CheckpointError),
    Bad(CheckpointError),
}

/// Read the pickle at the start of `data` (a legacy torch.save file is several in a row). Returns
/// the value at STOP and the offset just after it.
pub fn read_prefix(data: &[u8], entry: &str, rules: Rules) -> Result<(Pickle, usize), Prefix> {
    let mut m = Machine::new(data, entry, rules);
    let result = m.run();
    if let Some(shared) = rules.decimal {
        shared.set(m.decimal_left);
    }
    match result {
        Ok(root) => Ok((
            Pickle {
                root,
                storages: std::mem::take(&mut m.storages),
                declared: std::mem::take(&mut m.declared).into_iter().collect(),
                containers: std::mem::take(&mut m.containers),
            },
            m.pos,
        )),
        Err(e) if m.starved => Err(Prefix::Starved(e)),
        Err(e) => Err(Prefix::Bad(e)),
    }
}

/// Every global the stream references (`module.name`, in stream order), reading on past globals
/// outside the allowlist as if each were declared, and how the walk ended: for differential tests
/// against CPython's unpickler (fuzz/differential), which records `find_class` calls the same way.
pub fn referenced_globals(data: &[u8], ids: Ids) -> (Vec<String>, Result<(), CheckpointError>) {
    let mut m = Machine::new(
        data,
        "the stream",
        Rules {
            ids,
            declared: &[],
            decimal: None,
        },
    );
    m.record = Some(Vec::new());
    let end = m.run().map(|_| ());
    let end = end.and_then(|()| {
        if m.pos == data.len() {
            Ok(())
        } else {
            Err(CheckpointError::Ambiguous(format!(
                "{} bytes follow the pickle's STOP",
                data.len() - m.pos
            )))
        }
    });
    (m.record.take().unwrap_or_default(), end)
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], entry: &'a str, rules: Rules<'a>) -> Self {
        Machine {
            data,
            pos: 0,
            entry,
            stack: Vec::new(),
            memo: HashMap::new(),
            containers: Vec::new(),
            frame_end: None,
            work: 0,
            decimal_left: rules.decimal.map_or(MAX_DECIMAL_WORK, std::cell::Cell::get),
            rules,
            starved: false,
            storages: Vec::new(),
            declared: Default::default(),
            record: None,
            proto: 0,
        }
    }

    fn track(&mut self, v: Value) -> Value {
        self.containers.push(v.clone());
        v
    }

    fn new_list(&mut self, v: Vec<Value>) -> Value {
        let l = new_list_untracked(v);
        self.track(l)
    }

    fn new_dict(&mut self, v: Vec<(Value, Value)>) -> Value {
        let d = new_dict_untracked(v);
        self.track(d)
    }

    fn new_set(&mut self, v: Vec<Value>) -> Value {
        let s = Value::Set(Rc::new(RefCell::new(v)));
        self.track(s)
    }

    /// Something torch reads and plumbline does not describe (quantized, sparse, … tensors).
    fn not_described(&self, what: &str) -> CheckpointError {
        CheckpointError::Unsupported(format!(
            "{what} in {}: torch reads it, plumbline does not describe it",
            self.entry
        ))
    }

    fn bad(&self, detail: impl Into<String>) -> CheckpointError {
        CheckpointError::malformed(
            "pickle",
            format!("{} at byte {} of {}", detail.into(), self.pos, self.entry),
        )
    }

    /// Framing as CPython's `pickle._Unframer` reads it: inside a FRAME, a read that would run past the
    /// frame's end is an error ("pickle exhausted before end of frame"). The C unpickler ignores frames,
    /// so an opcode straddling a frame boundary is exactly where the two could read different opcodes:
    /// refused (torch never writes one).
    fn check_frame(&self, end: usize) -> Result<(), CheckpointError> {
        match self.frame_end {
            Some(frame_end) if self.pos < frame_end && end > frame_end => {
                Err(CheckpointError::Ambiguous(format!(
                    "an opcode's argument runs past the end of its FRAME (byte {frame_end}) at byte {} of {}: CPython's C unpickler reads through it, pickle._Unframer refuses it",
                    self.pos, self.entry
                )))
            }
            _ => Ok(()),
        }
    }

    fn charge_work(&mut self, items: usize) -> Result<(), CheckpointError> {
        self.work += items as u64;
        if self.work > MAX_WORK {
            return Err(CheckpointError::Unsupported(format!(
                "the pickle copies more than {MAX_WORK} values or bytes (at byte {} of {})",
                self.pos, self.entry
            )));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        if let Some(end) = end {
            self.check_frame(end)?;
        }
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => {
                self.starved = true;
                Err(self.bad(format!(
                    "truncated: {n} bytes announced, {} left",
                    self.data.len() - self.pos
                )))
            }
        }
    }

    fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CheckpointError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn len(&mut self, n: u64) -> Result<usize, CheckpointError> {
        let fits = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos);
        if fits.is_none() {
            self.starved = true;
        }
        fits.ok_or_else(|| self.bad(format!("length {n} runs past the end of the stream")))
    }

    fn line_bytes(&mut self) -> Result<&'a [u8], CheckpointError> {
        let rest = &self.data[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            self.starved = true;
            return Err(self.bad("unterminated text argument"));
        };
        self.check_frame(self.pos + nl + 1)?;
        self.pos += nl + 1;
        Ok(&rest[..nl])
    }

    fn line(&mut self) -> Result<&'a str, CheckpointError> {
        let bytes = self.line_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| self.bad("text argument is not UTF-8"))
    }

    /// A GLOBAL/INST reference: two text lines, with Python 2 names mapped to Python 3 ones as
    /// torch's weights-only unpickler maps every GLOBAL before its allowlist check (CPython's
    /// `find_class` does the same for protocols 0-2).
    fn global_lines(&mut self) -> Result<(String, String), CheckpointError> {
        let module = self.line()?;
        let name = self.line()?;
        // CPython's C unpickler reads an empty line here as truncated data (found by the CPython
        // differential: plumbline had taken `c\n\n` for the global `.`).
        if module.is_empty() || name.is_empty() {
            return Err(
                self.bad("an empty GLOBAL/INST line (CPython: \"pickle data was truncated\")")
            );
        }
        let (m, n) = compat::python3_name(module, name);
        Ok((m.to_owned(), n.to_owned()))
    }

    /// UNICODE's argument: latin-1 bytes with `\uXXXX` / `\UXXXXXXXX` escapes (raw-unicode-escape).
    fn raw_unicode_escape(&self, bytes: &[u8]) -> Result<String, CheckpointError> {
        let mut out = String::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'\\' {
                out.push(char::from(bytes[i]));
                i += 1;
                continue;
            }
            // As CPython's raw-unicode-escape decoder: a run of backslashes is literal, and only
            // when the run is odd does its last backslash start a \u or \U escape.
            let run = bytes[i..].iter().take_while(|&&b| b == b'\\').count();
            out.extend(std::iter::repeat_n('\\', run));
            i += run;
            let width = match bytes.get(i) {
                Some(b'u') if run % 2 == 1 => 4,
                Some(b'U') if run % 2 == 1 => 8,
                _ => continue,
            };
            out.pop();
            i -= 1;
            let hex = bytes
                .get(i + 2..i + 2 + width)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            let c = hex
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32);
            out.push(c.ok_or_else(|| self.bad("bad \\u escape in UNICODE"))?);
            i += 2 + width;
        }
        Ok(out)
    }

    /// INT and LONG text as CPython reads it only where that is plain decimal: the C unpickler parses
    /// INT with `strtol(…, 0)` (so `010` is 8) and pickle.py with `int(…, 0)` (an error), so a leading
    /// zero, a sign other than `-`, a base prefix, spaces or underscores are refused as ambiguous.
    fn plain_decimal(&self, s: &str, op: &str, at: usize) -> Result<(), CheckpointError> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let plain = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if plain {
            Ok(())
        } else {
            Err(CheckpointError::Ambiguous(format!(
                "{op} {s:?} at byte {at} of {} is not plain decimal (CPython's readers disagree on it)",
                self.entry
            )))
        }
    }

    fn utf8(&self, b: &[u8]) -> Result<String, CheckpointError> {
        String::from_utf8(b.to_vec()).map_err(|_| self.bad("string is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> Result<(), CheckpointError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.bad("stack too deep"));
        }
        self.stack.push(v);
        Ok(())
    }

    /// The value on top of the stack. A MARK is a fence, as CPython's unpickler keeps it: nothing
    /// but POP and the opcodes that take everything above it reach below one ("unexpected MARK
    /// found").
    fn pop(&mut self) -> Result<Value, CheckpointError> {
        self.top()?;
        Ok(self.stack.pop().expect("top checked"))
    }

    fn top(&mut self) -> Result<&mut Value, CheckpointError> {
        let pos = self.pos;
        let entry = self.entry;
        let bad = |what: &str| {
            CheckpointError::malformed("pickle", format!("{what} at byte {pos} of {entry}"))
        };
        match self.stack.last_mut() {
            None => Err(bad("stack underflow")),
            Some(Value::Mark) => Err(bad("unexpected MARK found")),
            Some(v) => Ok(v),
        }
    }

    /// Everything above the topmost MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, CheckpointError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.bad("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), CheckpointError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), CheckpointError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.bad(format!("memo key {key} was never stored")))?;
        self.push(v)
    }

    /// The one place a global is resolved: refuse anything outside the allowlist.
    fn global(
        &mut self,
        module: &str,
        name: &str,
        opcode: &'static str,
        at: usize,
    ) -> Result<Value, CheckpointError> {
        if let Some(seen) = &mut self.record {
            seen.push(format!("{module}.{name}"));
            return Ok(Value::Global(Rc::new((module.to_owned(), name.to_owned()))));
        }
        let declared = !self.rules.declared.is_empty() && {
            let full = format!("{module}.{name}");
            self.rules.declared.contains(&full)
        };
        if declared {
            self.declared.insert(format!("{module}.{name}"));
        }
        if !is_allowed(module, name) && !declared {
            return Err(CheckpointError::UnsafeGlobal {
                entry: self.entry.to_owned(),
                module: module.to_owned(),
                name: name.to_owned(),
                opcode,
                offset: at as u64,
            });
        }
        Ok(Value::Global(Rc::new((module.to_owned(), name.to_owned()))))
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), CheckpointError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.bad("SETITEMS with an odd number of items"));
        }
        let Value::Dict(d) = target else {
            return Err(self.bad("SETITEM(S) on something that is not a dict"));
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    /// The opcode loop, one arm per opcode as in CPython's `_Unpickler.dispatch`: the value at STOP.
    fn run(&mut self) -> Result<Value, CheckpointError> {
        loop {
            let at = self.pos;
            self.leave_used_frame();
            let op = self.u8()?;
            match op {
                0x80 => self.load_proto()?,
                0x95 => self.load_frame(at)?,
                b'.' => return self.pop(),
                b'(' => self.push(Value::Mark)?,
                b'0' => self.load_pop()?,
                b'1' => self.load_pop_mark()?,
                b'2' => self.load_dup()?,
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'I' => self.load_int(at)?,
                b'J' | b'K' | b'M' => self.load_binint(op)?,
                b'L' => self.load_long(at)?,
                0x8a | 0x8b => self.load_binlong(op)?,
                b'F' => self.load_float()?,
                b'G' => self.load_binfloat()?,
                b'X' | 0x8c | 0x8d => self.load_binunicode(op)?,
                b'V' => self.load_unicode()?,
                b'S' => self.load_string(at)?,
                b'T' | b'U' => self.load_binstring(op)?,
                b'B' | b'C' | 0x8e | 0x96 => self.load_binbytes(op)?,
                b']' => self.load_empty_list()?,
                b'l' => self.load_list()?,
                b'a' => self.load_append()?,
                b'e' => self.load_appends()?,
                b')' => self.push(Value::Tuple(Rc::new(Vec::new())))?,
                b't' => self.load_tuple()?,
                0x85..=0x87 => self.load_tuple_n(op)?,
                b'}' => self.load_empty_dict()?,
                b'd' => self.load_dict()?,
                b's' => self.load_setitem()?,
                b'u' => self.load_setitems()?,
                0x8f => self.load_empty_set()?,
                0x90 => self.load_additems()?,
                0x91 => self.load_frozenset()?,
                b'g' | b'h' | b'j' => self.load_get(op)?,
                b'p' | b'q' | b'r' => self.load_put(op)?,
                0x94 => self.load_memoize()?,
                b'c' => self.load_global(at)?,
                0x93 => self.load_stack_global(at)?,
                b'i' => self.load_inst(at)?,
                0x82..=0x84 => self.load_ext(at)?,
                b'o' => self.load_obj()?,
                0x81 => self.call_popped("NEWOBJ")?,
                0x92 => self.load_newobj_ex()?,
                b'R' => self.call_popped("REDUCE")?,
                b'b' => self.load_build(at)?,
                b'Q' => self.load_binpersid()?,
                b'P' => self.load_persid()?,
                0x97..=0x98 => self.load_buffer(op, at)?,
                _ => return Err(self.bad(format!("unknown opcode 0x{op:02x}"))),
            }
        }
    }

    /// Leaves the current FRAME once the parse has reached its end.
    fn leave_used_frame(&mut self) {
        if self.frame_end.is_some_and(|end| self.pos >= end) {
            self.frame_end = None;
        }
    }

    /// PROTO: the stream's protocol, 0 to 5.
    fn load_proto(&mut self) -> Result<(), CheckpointError> {
        let proto = self.u8()?;
        if proto > 5 {
            return Err(self.bad(format!("unknown pickle protocol {proto}")));
        }
        self.proto = proto;
        Ok(())
    }

    /// FRAME (at byte `at`): where the new frame ends.
    fn load_frame(&mut self, at: usize) -> Result<(), CheckpointError> {
        // pickle._Unframer.load_frame: a new frame only once the current one is used up.
        if let Some(end) = self.frame_end {
            return Err(CheckpointError::Ambiguous(format!(
                "a FRAME begins at byte {at} of {}, before the end of the current frame (byte {end})",
                self.entry
            )));
        }
        let n = self.u64()?;
        let n = self.len(n).map_err(|_| {
            self.bad(format!(
                "a FRAME of {n} bytes runs past the end of the stream"
            ))
        })?;
        self.frame_end = Some(self.pos + n);
        Ok(())
    }

    /// POP: it takes the MARK itself when one is on top, as CPython's load_pop does.
    fn load_pop(&mut self) -> Result<(), CheckpointError> {
        self.stack
            .pop()
            .ok_or_else(|| self.bad("stack underflow"))?;
        Ok(())
    }

    /// POP_MARK: everything above the topmost MARK, and the MARK, dropped.
    fn load_pop_mark(&mut self) -> Result<(), CheckpointError> {
        self.pop_mark()?;
        Ok(())
    }

    /// DUP: the top of the stack, pushed again.
    fn load_dup(&mut self) -> Result<(), CheckpointError> {
        let v = self.top()?.clone();
        self.push(v)
    }

    /// INT (at byte `at`): decimal text, or `01`/`00` for the two bools.
    fn load_int(&mut self, at: usize) -> Result<(), CheckpointError> {
        let s = self.line()?;
        let v = match s {
            "01" => Value::Bool(true),
            "00" => Value::Bool(false),
            _ => {
                self.plain_decimal(s, "INT", at)?;
                Value::Int(s.parse().map_err(|_| self.bad(format!("bad INT {s:?}")))?)
            }
        };
        self.push(v)
    }

    /// BININT, BININT1, BININT2: a little-endian i32, u8 or u16.
    fn load_binint(&mut self, op: u8) -> Result<(), CheckpointError> {
        let v = match op {
            b'J' => i64::from(i32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            b'K' => i64::from(self.u8()?),
            _ => i64::from(self.u16()?),
        };
        self.push(Value::Int(v))
    }

    /// LONG (at byte `at`): decimal text with an optional `L`, kept as digits beyond i64.
    fn load_long(&mut self, at: usize) -> Result<(), CheckpointError> {
        let s = self.line()?;
        let s = s.strip_suffix('L').unwrap_or(s);
        self.plain_decimal(s, "LONG", at)?;
        let v = match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_)
                if !s.is_empty()
                    && s.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit()) =>
            {
                Value::BigInt(s.into())
            }
            Err(_) => return Err(self.bad(format!("bad LONG {s:?}"))),
        };
        self.push(v)
    }

    /// LONG1, LONG4: little-endian two's complement of a u8 or u32 length, in decimal within the
    /// budget.
    fn load_binlong(&mut self, op: u8) -> Result<(), CheckpointError> {
        let n = if op == 0x8a {
            u64::from(self.u8()?)
        } else {
            u64::from(self.u32()?)
        };
        let n = self.len(n)?;
        let bytes = self.take(n)?;
        // Decimal text costs ~2.4 n² steps for n bytes: past a total budget, bigger
        // integers keep their size only, so many of them cannot add up to minutes.
        let cost = (bytes.len() as u64).pow(2) * 5 / 2;
        let v = if bytes.len() > 8 && cost > self.decimal_left {
            Value::BigInt(Rc::from(format!("<int of {} bytes>", bytes.len())))
        } else {
            if bytes.len() > 8 {
                self.decimal_left -= cost;
            }
            decode_long(bytes)
        };
        self.push(v)
    }

    /// FLOAT: a float as text.
    fn load_float(&mut self) -> Result<(), CheckpointError> {
        let s = self.line()?;
        let v = s
            .trim()
            .parse::<f64>()
            .map_err(|_| self.bad(format!("bad FLOAT {s:?}")))?;
        self.push(Value::Float(v))
    }

    /// BINFLOAT: a big-endian f64.
    fn load_binfloat(&mut self) -> Result<(), CheckpointError> {
        let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
        self.push(Value::Float(v))
    }

    /// BINUNICODE, SHORT_BINUNICODE, BINUNICODE8: UTF-8 of a u32, u8 or u64 length.
    fn load_binunicode(&mut self, op: u8) -> Result<(), CheckpointError> {
        let n = match op {
            b'X' => u64::from(self.u32()?),
            0x8c => u64::from(self.u8()?),
            _ => self.u64()?,
        };
        let n = self.len(n)?;
        let b = self.take(n)?;
        let s = self.utf8(b)?;
        self.push(Value::Str(s.into()))
    }

    /// UNICODE: a raw-unicode-escape text line.
    fn load_unicode(&mut self) -> Result<(), CheckpointError> {
        let raw = self.line_bytes()?;
        let s = self.raw_unicode_escape(raw)?;
        self.push(Value::Str(s.into()))
    }

    /// STRING (at byte `at`): a quoted text line, without backslash escapes.
    fn load_string(&mut self, at: usize) -> Result<(), CheckpointError> {
        let s = self.line()?;
        let s = s.trim();
        let unq = s
            .strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            .ok_or_else(|| self.bad("STRING argument is not quoted"))?;
        // CPython decodes backslash escapes here (`codecs.escape_decode`); plumbline
        // does not, so text with one could read differently: refused.
        if unq.contains('\\') {
            return Err(CheckpointError::Ambiguous(format!(
                "a STRING with backslash escapes at byte {at} of {}",
                self.entry
            )));
        }
        self.push(Value::Str(unq.into()))
    }

    /// BINSTRING, SHORT_BINSTRING: bytes of a u32 or u8 length, read as UTF-8.
    fn load_binstring(&mut self, op: u8) -> Result<(), CheckpointError> {
        let n = if op == b'T' {
            u64::from(self.u32()?)
        } else {
            u64::from(self.u8()?)
        };
        let n = self.len(n)?;
        let b = self.take(n)?;
        // Python 2 str: bytes, which torch.load decodes with encoding="utf-8".
        let s = self.utf8(b)?;
        self.push(Value::Str(s.into()))
    }

    /// BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8: bytes of a u32, u8 or u64 length.
    fn load_binbytes(&mut self, op: u8) -> Result<(), CheckpointError> {
        let n = match op {
            b'B' => u64::from(self.u32()?),
            b'C' => u64::from(self.u8()?),
            _ => self.u64()?,
        };
        let n = self.len(n)?;
        let b = self.take(n)?;
        self.push(Value::Bytes(b.into()))
    }

    /// EMPTY_LIST: an empty list, pushed.
    fn load_empty_list(&mut self) -> Result<(), CheckpointError> {
        let l = self.new_list(Vec::new());
        self.push(l)
    }

    /// LIST: the items above the topmost MARK, as a list.
    fn load_list(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        let l = self.new_list(items);
        self.push(l)
    }

    /// APPEND: the top value, appended to the list below it.
    fn load_append(&mut self) -> Result<(), CheckpointError> {
        let v = self.pop()?;
        match self.top()? {
            Value::List(l) => l.borrow_mut().push(v),
            _ => return Err(self.bad("APPEND to something that is not a list")),
        }
        Ok(())
    }

    /// APPENDS: the items above the topmost MARK, appended to the list below it.
    fn load_appends(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        match self.top()? {
            Value::List(l) => l.borrow_mut().extend(items),
            _ => return Err(self.bad("APPENDS to something that is not a list")),
        }
        Ok(())
    }

    /// TUPLE: the items above the topmost MARK, as a tuple.
    fn load_tuple(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        self.push(Value::Tuple(Rc::new(items)))
    }

    /// TUPLE1, TUPLE2, TUPLE3: the top one, two or three values, as a tuple.
    fn load_tuple_n(&mut self, op: u8) -> Result<(), CheckpointError> {
        let n = usize::from(op - 0x84);
        if self.stack.len() < n {
            return Err(self.bad("stack underflow"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        if items.iter().any(|v| matches!(v, Value::Mark)) {
            return Err(self.bad("MARK inside a TUPLEn"));
        }
        self.push(Value::Tuple(Rc::new(items)))
    }

    /// EMPTY_DICT: an empty dict, pushed.
    fn load_empty_dict(&mut self) -> Result<(), CheckpointError> {
        let d = self.new_dict(Vec::new());
        self.push(d)
    }

    /// DICT: the key-value pairs above the topmost MARK, as a dict.
    fn load_dict(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        let d = self.new_dict(Vec::new());
        self.set_items(&d, items)?;
        self.push(d)
    }

    /// SETITEM: the top key and value, set in the dict below them.
    fn load_setitem(&mut self) -> Result<(), CheckpointError> {
        let v = self.pop()?;
        let k = self.pop()?;
        let target = self.top()?.clone();
        self.set_items(&target, vec![k, v])
    }

    /// SETITEMS: the key-value pairs above the topmost MARK, set in the dict below it.
    fn load_setitems(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        let target = self.top()?.clone();
        self.set_items(&target, items)
    }

    /// EMPTY_SET: an empty set, pushed.
    fn load_empty_set(&mut self) -> Result<(), CheckpointError> {
        let set = self.new_set(Vec::new());
        self.push(set)
    }

    /// ADDITEMS: the items above the topmost MARK, added to the set below it.
    fn load_additems(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        match self.top()? {
            Value::Set(s) => s.borrow_mut().extend(items),
            _ => return Err(self.bad("ADDITEMS to something that is not a set")),
        }
        Ok(())
    }

    /// FROZENSET: the items above the topmost MARK, as a set.
    fn load_frozenset(&mut self) -> Result<(), CheckpointError> {
        let items = self.pop_mark()?;
        let set = self.new_set(items);
        self.push(set)
    }

    /// GET, BINGET, LONG_BINGET: the memo value of a text, u8 or u32 key, pushed.
    fn load_get(&mut self, op: u8) -> Result<(), CheckpointError> {
        let k = match op {
            b'g' => {
                let s = self.line()?;
                s.trim()
                    .parse()
                    .map_err(|_| self.bad(format!("bad GET {s:?}")))?
            }
            b'h' => self.u8()?.into(),
            _ => self.u32()?,
        };
        self.memo_get(k)
    }

    /// PUT, BINPUT, LONG_BINPUT: the top value, memoized under a text, u8 or u32 key.
    fn load_put(&mut self, op: u8) -> Result<(), CheckpointError> {
        let k = match op {
            b'p' => {
                let s = self.line()?;
                s.trim()
                    .parse()
                    .map_err(|_| self.bad(format!("bad PUT {s:?}")))?
            }
            b'q' => self.u8()?.into(),
            _ => self.u32()?,
        };
        self.memo_put(k)
    }

    /// MEMOIZE: the top value, memoized under the next key.
    fn load_memoize(&mut self) -> Result<(), CheckpointError> {
        let k = u32::try_from(self.memo.len()).map_err(|_| self.bad("memo overflow"))?;
        self.memo_put(k)
    }

    /// GLOBAL (at byte `at`): a global named by two text lines, checked against the allowlist.
    fn load_global(&mut self, at: usize) -> Result<(), CheckpointError> {
        let (module, name) = self.global_lines()?;
        let g = self.global(&module, &name, "GLOBAL", at)?;
        self.push(g)
    }

    /// STACK_GLOBAL (at byte `at`): a global named by the two strings on the stack, checked against
    /// the allowlist.
    fn load_stack_global(&mut self, at: usize) -> Result<(), CheckpointError> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
            return Err(self.bad("STACK_GLOBAL operands are not strings"));
        };
        // CPython's find_class maps Python 2 names whenever the stream's protocol
        // (its PROTO opcode, 0 without one) is below 3, whatever opcode names them.
        let (module, name) = if self.proto < 3 {
            compat::python3_name(module, name)
        } else {
            (&**module, &**name)
        };
        let (module, name) = (module.to_owned(), name.to_owned());
        let g = self.global(&module, &name, "STACK_GLOBAL", at)?;
        self.push(g)
    }

    /// INST (at byte `at`): a global named by two text lines, called with the items above the
    /// topmost MARK.
    fn load_inst(&mut self, at: usize) -> Result<(), CheckpointError> {
        let (module, name) = self.global_lines()?;
        let g = self.global(&module, &name, "INST", at)?;
        let args = self.pop_mark()?;
        let v = self.call(&g, &args)?;
        self.push(v)
    }

    /// EXT1, EXT2, EXT4 (at byte `at`): refused.
    fn load_ext(&self, at: usize) -> Result<(), CheckpointError> {
        // The extension registry maps integers to arbitrary globals: nothing to check them against.
        Err(CheckpointError::UnsafeGlobal {
            entry: self.entry.to_owned(),
            module: "copyreg".into(),
            name: "extension registry".into(),
            opcode: "EXT",
            offset: at as u64,
        })
    }

    /// OBJ: the first item above the topmost MARK, called with the others.
    fn load_obj(&mut self) -> Result<(), CheckpointError> {
        let mut items = self.pop_mark()?;
        if items.is_empty() {
            return Err(self.bad("OBJ without a class"));
        }
        let class = items.remove(0);
        let v = self.call(&class, &items)?;
        self.push(v)
    }

    /// NEWOBJ_EX: as NEWOBJ, its keyword arguments dropped.
    fn load_newobj_ex(&mut self) -> Result<(), CheckpointError> {
        let _kwargs = self.pop()?;
        self.call_popped("NEWOBJ_EX")
    }

    /// NEWOBJ, REDUCE (`opcode`): the callable below the top, called with the tuple on top.
    fn call_popped(&mut self, opcode: &str) -> Result<(), CheckpointError> {
        let args = self.pop()?;
        let f = self.pop()?;
        let args = tuple_items(&args)
            .ok_or_else(|| self.bad(format!("{opcode} arguments are not a tuple")))?;
        let v = self.call(&f, args)?;
        self.push(v)
    }

    /// BUILD (at byte `at`): the top value, set as the state of the object below it.
    fn load_build(&mut self, at: usize) -> Result<(), CheckpointError> {
        // A declared global's object keeps the state (it is described with it); a dict (an
        // OrderedDict's `_metadata`, which torch sets with `__dict__.update`) takes a dict.
        // Anything else would change at load in a way plumbline does not describe (BUILD on a
        // tensor is `Tensor.set_`, which can give it another shape): refused.
        let state = self.pop()?;
        match self.top()? {
            Value::Object(o) => {
                let o = o.clone();
                if o.state.borrow().is_some() {
                    return Err(CheckpointError::Ambiguous(format!(
                        "BUILD sets the state of a {}.{} twice at byte {at} of {}",
                        o.class.0, o.class.1, self.entry
                    )));
                }
                *o.state.borrow_mut() = Some(state);
            }
            Value::Dict(_) if matches!(state, Value::Dict(_)) => {}
            other => {
                let what = match other {
                    Value::Tensor(_) => "a tensor (torch runs Tensor.set_ with it)",
                    Value::Dict(_) => "a dict, with a state that is not a dict",
                    _ => "a value plumbline describes without state",
                };
                return Err(CheckpointError::Unsupported(format!(
                    "BUILD on {what} at byte {at} of {}",
                    self.entry
                )));
            }
        }
        Ok(())
    }

    /// BINPERSID: the storage the persistent id on top names.
    fn load_binpersid(&mut self) -> Result<(), CheckpointError> {
        let pid = self.pop()?;
        let v = self.persistent(&pid)?;
        self.push(v)
    }

    /// PERSID: refused.
    fn load_persid(&mut self) -> Result<(), CheckpointError> {
        let s = self.line()?.to_owned();
        Err(self.bad(format!(
            "text persistent id {s:?} (not written by torch.save)"
        )))
    }

    /// NEXT_BUFFER, READONLY_BUFFER (`op`, at byte `at`): refused.
    fn load_buffer(&self, op: u8, at: usize) -> Result<(), CheckpointError> {
        Err(CheckpointError::Unsupported(format!(
            "out-of-band pickle buffers (opcode 0x{op:02x} at byte {at} of {})",
            self.entry
        )))
    }

    /// torch's persistent id for a storage: ('storage', <storage class>, key, location, numel), and
    /// in a legacy file a sixth item, None or the view (view key, offset, numel).
    fn persistent(&mut self, pid: &Value) -> Result<Value, CheckpointError> {
        if self.rules.ids == Ids::None {
            return Err(CheckpointError::Unsupported(format!(
                "a persistent id (BINPERSID) in {}: nothing resolves one there (only torch.save's object pickle has them)",
                self.entry
            )));
        }
        let items = tuple_items(pid).ok_or_else(|| self.bad("persistent id is not a tuple"))?;
        let (kind, class, key, numel, view) = match (self.rules.ids, items) {
            (
                Ids::Zip,
                [
                    Value::Str(kind),
                    Value::Global(class),
                    Value::Str(key),
                    _location,
                    numel,
                ],
            ) => (kind, class, key, numel, None),
            (
                Ids::Legacy,
                [
                    Value::Str(kind),
                    Value::Global(class),
                    Value::Str(key),
                    _location,
                    numel,
                    view,
                ],
            ) => (kind, class, key, numel, Some(view)),
            _ => {
                let shape = if self.rules.ids == Ids::Legacy {
                    "('storage', class, key, location, numel, view)"
                } else {
                    "('storage', class, key, location, numel)"
                };
                return Err(self.bad(format!("persistent id is not torch's {shape}")));
            }
        };
        if &**kind != "storage" {
            return Err(self.bad(format!("persistent id of kind {kind:?}, not 'storage'")));
        }
        if quantized(&class.1) {
            return Err(self.not_described(&format!(
                "a quantized tensor (storage {}.{})",
                class.0, class.1
            )));
        }
        // Only torch's own storage classes (a declared global that happens to be called
        // `FloatStorage` is not one).
        let torch_class = matches!(class.0.as_str(), "torch" | "torch.cuda" | "torch.storage")
            && is_allowed(&class.0, &class.1);
        let dtype = storage_dtype(&class.1)
            .filter(|_| torch_class)
            .ok_or_else(|| self.bad(format!("unknown storage class {}.{}", class.0, class.1)))?;
        if self.rules.ids == Ids::Legacy && class.1 == "UntypedStorage" {
            return Err(CheckpointError::Unsupported(format!(
                "an UntypedStorage in the legacy {}: torch 2.15 cannot load it either (\"has no attribute 'dtype'\")",
                self.entry
            )));
        }
        let numel = as_u64(numel)
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| self.bad("storage numel is not an int from 0 to 2^63 - 1"))?;
        // A storage view (the sixth item) is what torch < 0.4 wrote; torch keeps views and roots in
        // one table by key, so a view key could stand for another storage: not described.
        if !matches!(view, None | Some(Value::None)) {
            return Err(CheckpointError::Unsupported(format!(
                "a storage view in {} (written by torch < 0.4): re-save the file with a current torch",
                self.entry
            )));
        }
        self.charge_work(key.len())?;
        let storage = Rc::new(StorageRef {
            dtype: dtype.to_owned(),
            key: key.to_string(),
            numel,
        });
        self.storages.push(storage.clone());
        Ok(Value::Storage(storage))
    }

    /// A tensor from (storage, offset, size, stride, ...), as `Tensor.set_` builds it: the storage
    /// must hold the furthest element the strides reach (a stride-0 view of one row reaches
    /// little), measured in bytes when the tensor's dtype is not its storage's.
    fn rebuild_tensor(
        &mut self,
        args: &[Value],
        dtype: Option<String>,
    ) -> Result<Value, CheckpointError> {
        let storage = match args.first() {
            Some(Value::Storage(s)) => s.clone(),
            _ => return Err(self.bad("tensor rebuild without a storage")),
        };
        let offset = args
            .get(1)
            .and_then(as_u64)
            .ok_or_else(|| self.bad("tensor storage offset"))?;
        let ints = |v: Option<&Value>| {
            v.and_then(tuple_items)
                .and_then(|s| s.iter().map(as_u64).collect::<Option<Vec<_>>>())
        };
        let shape =
            ints(args.get(2)).ok_or_else(|| self.bad("tensor size is not a tuple of ints"))?;
        let stride = ints(args.get(3))
            .ok_or_else(|| self.bad("tensor stride is not a tuple of non-negative ints"))?;
        self.charge_work(shape.len() + stride.len())?;
        if stride.len() != shape.len() {
            return Err(self.bad(format!(
                "tensor of {} dimensions with {} strides",
                shape.len(),
                stride.len()
            )));
        }
        let (storage_dtype, key, storage_numel) = (&storage.dtype, &storage.key, storage.numel);
        let dtype = dtype.unwrap_or_else(|| storage_dtype.clone());
        if quantized(&dtype) {
            return Err(self.not_described(&format!("a quantized tensor ({dtype})")));
        }
        let item = dtype_size(&dtype)
            .ok_or_else(|| self.bad(format!("tensor of unknown dtype {dtype}")))?;
        let storage_item = dtype_size(storage_dtype).unwrap_or(1);
        let overflow = || self.bad("tensor size overflows");
        // torch counts elements in an int64 ("numel: integer multiplication overflow").
        shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        // c10's checkInBoundsForStorage: nothing to check for an empty tensor; otherwise the last
        // element reached is offset + Σ (size_i - 1) * stride_i.
        if !shape.contains(&0) {
            let last = shape
                .iter()
                .zip(&stride)
                .try_fold(offset, |a, (&d, &s)| (d - 1).checked_mul(s)?.checked_add(a))
                .ok_or_else(overflow)?;
            let need = last
                .checked_add(1)
                .and_then(|n| n.checked_mul(item))
                .ok_or_else(overflow)?;
            let have = storage_numel.saturating_mul(storage_item);
            if need > have {
                return Err(self.bad(format!(
                    "tensor of shape {shape:?} and strides {stride:?} at offset {offset} reaches byte {need} of a storage of {have} bytes"
                )));
            }
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            dtype,
            shape,
            storage_key: key.clone(),
            storage_dtype: storage_dtype.clone(),
            storage_numel,
            attributes: Vec::new(),
        })))
    }

    /// The state `_rebuild_from_type_v2` sets on a tensor: none, or a dict of plain attribute
    /// values (`(dict, slots)` is refused: a slot could hold anything).
    fn attributes(&self, state: &Value) -> Result<Vec<(String, Value)>, CheckpointError> {
        let unsupported = || {
            CheckpointError::Unsupported(format!(
                "a tensor whose attributes are not a dict of plain values (_rebuild_from_type_v2) in {}",
                self.entry
            ))
        };
        match state {
            Value::None => Ok(Vec::new()),
            Value::Dict(d) => d
                .borrow()
                .iter()
                .map(|(k, v)| match k {
                    Value::Str(k) if plain(v) => Ok((k.to_string(), v.clone())),
                    _ => Err(unsupported()),
                })
                .collect(),
            _ => Err(unsupported()),
        }
    }

    /// What "calling" an allowlisted global yields. Nothing is executed; unknown callables give opaque values.
    fn call(&mut self, f: &Value, args: &[Value]) -> Result<Value, CheckpointError> {
        let Value::Global(g) = f else {
            return Err(self.bad("call of something that is not a global"));
        };
        let (module, name) = (&g.0, &g.1);
        // Only a declared global gets here without being on the built-in allowlist: its object is
        // described by its arguments (and later its state), never built.
        if !is_allowed(module, name) {
            return self.declared_object(module, name, args);
        }
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") if args.is_empty() => Ok(self.new_dict(Vec::new())),
            // _rebuild_tensor(storage, offset, size, stride) and
            // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
            // the tensor has its storage's dtype.
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                self.rebuild_tensor(args, None)
            }
            // _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
            // metadata=None): the dtype is its own argument (an UntypedStorage holds bytes); how
            // torch writes uint16/32/64, float8 and the other dtypes without a typed storage class.
            ("torch._utils", "_rebuild_tensor_v3") => match args.get(6) {
                Some(Value::Global(g)) if g.0 == "torch" => {
                    let dtype = g.1.clone();
                    self.rebuild_tensor(args, Some(dtype))
                }
                _ => Err(self.bad("_rebuild_tensor_v3 without a torch dtype")),
            },
            ("torch._tensor", "_rebuild_from_type_v2") => self.rebuild_from_type(args),
            ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state")
            | ("torch.nn.parameter", "Parameter") => self.rebuild_parameter(name, args),
            ("_codecs", "encode") => self.codecs_encode(args),
            ("builtins", "set") => self.builtin_set(args),
            // Allowlisted tensor rebuilders plumbline does not describe: an opaque value would hide a
            // tensor from the table (and from the first-layer check), so refuse to guess.
            ("torch._utils", _) | ("torch._tensor", _) => {
                Err(self.not_described(&undescribed_rebuild(module, name)))
            }
            // Anything else allowlisted (torch.Size, torch.device, complex, bytearray, Counter, …)
            // becomes an opaque value; its arguments must be plain values, so a tensor or a
            // container cannot disappear inside one (and with it from the tensor table).
            _ if args.iter().all(plain) => Ok(Value::Opaque(Rc::new(format!("{module}.{name}")))),
            _ => Err(CheckpointError::Unsupported(format!(
                "a call of {module}.{name} with arguments plumbline does not describe (containers or tensors) at byte {} of {}",
                self.pos, self.entry
            ))),
        }
    }

    /// The object of a declared global `module.name`, described by its arguments.
    fn declared_object(
        &mut self,
        module: &str,
        name: &str,
        args: &[Value],
    ) -> Result<Value, CheckpointError> {
        self.charge_work(args.len())?;
        let o = Value::Object(Rc::new(Object {
            class: (module.to_owned(), name.to_owned()),
            args: RefCell::new(args.to_vec()),
            state: RefCell::new(None),
        }));
        Ok(self.track(o))
    }

    /// _rebuild_from_type_v2(func, new_type, args, state): a tensor (or Parameter) with Python
    /// attributes. Described when `func` is a tensor rebuild, the type a plain tensor or
    /// Parameter, and the state a dict of plain values.
    fn rebuild_from_type(&mut self, args: &[Value]) -> Result<Value, CheckpointError> {
        let [func, Value::Global(new_type), inner, state] = args else {
            return Err(
                self.bad("_rebuild_from_type_v2 arguments are not (func, type, args, state)")
            );
        };
        let inner = tuple_items(inner)
            .ok_or_else(|| self.bad("_rebuild_from_type_v2 args are not a tuple"))?;
        let tensor_type = matches!(
            (new_type.0.as_str(), new_type.1.as_str()),
            ("torch", "Tensor") | ("torch.nn.parameter", "Parameter")
        );
        if !tensor_type {
            return Err(CheckpointError::Unsupported(format!(
                "a tensor subclass {}.{} (_rebuild_from_type_v2) in {}",
                new_type.0, new_type.1, self.entry
            )));
        }
        // Only a tensor rebuild as `func`: anything else (this function again, nested)
        // is not what torch.save writes.
        let rebuild = matches!(func, Value::Global(g) if g.0 == "torch._utils" && matches!(
            g.1.as_str(),
            "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3"
                | "_rebuild_parameter" | "_rebuild_parameter_with_state"
        ));
        if !rebuild {
            return Err(CheckpointError::Unsupported(format!(
                "_rebuild_from_type_v2 of something other than a tensor rebuild in {}",
                self.entry
            )));
        }
        let t = match &self.call(func, inner)? {
            Value::Tensor(t) => t.clone(),
            _ => {
                return Err(self.bad("_rebuild_from_type_v2 of something that is not a tensor"));
            }
        };
        let attributes = self.attributes(state)?;
        Ok(with_attributes(t, attributes))
    }

    /// _rebuild_parameter(data, requires_grad, hooks) and Parameter(data, requires_grad) (`name`):
    /// the tensor; _rebuild_parameter_with_state(data, requires_grad, hooks, state) also sets
    /// attributes.
    fn rebuild_parameter(&self, name: &str, args: &[Value]) -> Result<Value, CheckpointError> {
        match args.first() {
            Some(Value::Tensor(t)) => {
                let attributes = match args.get(3) {
                    Some(state) if name == "_rebuild_parameter_with_state" => {
                        self.attributes(state)?
                    }
                    _ => Vec::new(),
                };
                Ok(with_attributes(t.clone(), attributes))
            }
            _ => Err(self.bad("parameter rebuild without a tensor")),
        }
    }

    /// `_codecs.encode(text, "latin1")`, as protocols 0-2 write bytes: the bytes. Any other
    /// encoding would give other bytes than the latin-1 mapping here.
    fn codecs_encode(&mut self, args: &[Value]) -> Result<Value, CheckpointError> {
        match args {
            [Value::Str(s), Value::Str(enc)] if matches!(&**enc, "latin1" | "latin-1") => {
                self.charge_work(s.len())?;
                let bytes: Option<Vec<u8>> =
                    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                bytes
                    .map(|b| Value::Bytes(b.into()))
                    .ok_or_else(|| self.bad("_codecs.encode of text outside latin-1"))
            }
            _ => Err(self.bad("_codecs.encode other than (text, \"latin1\")")),
        }
    }

    /// `set(items)`: a set of the list's or tuple's items.
    fn builtin_set(&mut self, args: &[Value]) -> Result<Value, CheckpointError> {
        let items = match args.first() {
            Some(Value::List(l)) => l.borrow().clone(),
            Some(other) => tuple_items(other).unwrap_or_default().to_vec(),
            None => Vec::new(),
        };
        self.charge_work(items.len())?;
        Ok(self.new_set(items))
    }
}

/// What an allowlisted tensor rebuilder plumbline does not describe builds, with its name.
fn undescribed_rebuild(module: &str, name: &str) -> String {
    let kind = match name {
        "_rebuild_qtensor" => "a quantized tensor",
        "_rebuild_sparse_tensor" => "a sparse tensor",
        "_rebuild_meta_tensor_no_storage" => "a meta tensor (no storage)",
        "_rebuild_wrapper_subclass" => "a tensor subclass",
        "_rebuild_device_tensor_from_numpy" => "a tensor stored as a numpy array",
        _ => "a tensor",
    };
    format!("{kind} ({module}.{name})")
}

/// The tensor `t`, with `attributes` added to its own (`t` itself when there are none).
fn with_attributes(t: Rc<TensorRef>, attributes: Vec<(String, Value)>) -> Value {
    if attributes.is_empty() {
        return Value::Tensor(t);
    }
    let mut t = (*t).clone();
    t.attributes.extend(attributes);
    Value::Tensor(Rc::new(t))
}

/// A scalar, or a tuple or list of scalars: what an opaque call may take.
fn plain(v: &Value) -> bool {
    let scalar = |v: &Value| {
        matches!(
            v,
            Value::None
                | Value::Bool(_)
                | Value::Int(_)
                | Value::BigInt(_)
                | Value::Float(_)
                | Value::Str(_)
                | Value::Bytes(_)
                | Value::Global(_)
        )
    };
    match v {
        Value::Tuple(t) => t.iter().all(scalar),
        Value::List(l) => l.borrow().iter().all(scalar),
        other => scalar(other),
    }
}

fn tuple_items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Tuple(t) => Some(t.as_slice()),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// LONG1/LONG4 payload: little-endian two's complement.
fn decode_long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let neg = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    if bytes.len() > MAX_DECIMAL_BYTES {
        return Value::BigInt(Rc::from(format!("<int of {} bytes>", bytes.len())));
    }
    Value::BigInt(Rc::from(decimal(bytes)))
}

/// A little-endian two's complement integer of any length in decimal, as Python prints it.
fn decimal(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    // Magnitude, little-endian: for a negative number, two's complement back.
    let mut mag: Vec<u8> = if negative {
        let mut carry = 1u16;
        bytes
            .iter()
            .map(|b| {
                let v = u16::from(!b) + carry;
                carry = v >> 8;
                v as u8
            })
            .collect()
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        // Divide the big-endian view by 10, keeping the remainder.
        let mut rem = 0u16;
        for b in mag.iter_mut().rev() {
            let cur = (rem << 8) | u16::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_whole_names_only() {
        assert!(is_allowed("collections", "OrderedDict"));
        assert!(is_allowed("torch._utils", "_rebuild_tensor_v2"));
        assert!(!is_allowed("collections", "Ordered"));
        assert!(!is_allowed("collections.Ordered", "Dict"));
        assert!(!is_allowed("torch", "_utils._rebuild_tensor_v2"));
        assert!(!is_allowed("torch", "nn.parameter.Parameter"));
        assert!(!is_allowed("posix", "system"));
        assert!(!is_allowed("torch", "load"));
    }

    #[test]
    fn decodes_small_protocol_2_dict() {
        // pickle.dumps({"a": [1, -2, 3.5, None, True]}, protocol=2)
        let data = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88es.";
        let v = read(data, "t").unwrap();
        let Value::Dict(d) = &v.root else {
            panic!("not a dict")
        };
        let d = d.borrow();
        assert_eq!(d.len(), 1);
        let Value::List(l) = &d[0].1 else {
            panic!("not a list")
        };
        let l = l.borrow();
        assert!(matches!(l[1], Value::Int(-2)));
        assert!(matches!(l[2], Value::Float(f) if f == 3.5));
        assert_eq!(l.len(), 5);
    }

    #[test]
    fn big_integers_in_decimal() {
        // 2**70 and -(2**70), as LONG1 payloads (little-endian two's complement).
        let mut pos = vec![0u8; 9];
        pos[8] = 0x40;
        assert!(matches!(&decode_long(&pos), Value::BigInt(s) if &**s == "1180591620717411303424"));
        let mut neg = vec![0u8; 9];
        neg[8] = 0xc0;
        assert!(
            matches!(&decode_long(&neg), Value::BigInt(s) if &**s == "-1180591620717411303424")
        );
        assert_eq!(decimal(&[0xff; 9]), "-1");
        assert_eq!(decimal(&[0; 9]), "0");
    }

    #[test]
    fn storage_classes_and_sizes() {
        let table = [
            ("FloatStorage", "float32", 4),
            ("DoubleStorage", "float64", 8),
            ("HalfStorage", "float16", 2),
            ("BFloat16Storage", "bfloat16", 2),
            ("LongStorage", "int64", 8),
            ("IntStorage", "int32", 4),
            ("ShortStorage", "int16", 2),
            ("CharStorage", "int8", 1),
            ("ByteStorage", "uint8", 1),
            ("BoolStorage", "bool", 1),
            ("ComplexFloatStorage", "complex64", 8),
            ("ComplexDoubleStorage", "complex128", 16),
        ];
        for (class, dtype, size) in table {
            assert_eq!(storage_dtype(class), Some(dtype), "{class}");
            assert_eq!(dtype_size(dtype), Some(size), "{dtype}");
        }
        assert_eq!(storage_dtype("QInt8Storage"), None);
    }

    #[test]
    fn lengths_past_the_end_are_named() {
        // 5 bytes remain after the length; 10 are announced (fewer than the whole stream holds).
        let err = read(b"\x80\x02X\x0a\x00\x00\x00ab.", "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("length 10 runs past the end of the stream"),
            "{err}"
        );
    }

    #[test]
    fn python2_strings_and_pop_mark() {
        // STRING (quoted text), SHORT_BINSTRING, BINSTRING, then MARK ... POP_MARK leaves the stack as it was.
        let v = read(b"(S'a'\nU\x01bT\x01\x00\x00\x00c(K\x011t.", "t").unwrap();
        let Value::Tuple(t) = &v.root else {
            panic!("not a tuple")
        };
        let strs: Vec<String> = t
            .iter()
            .map(|x| match x {
                Value::Str(s) => s.to_string(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(strs, ["a", "b", "c"]);
        assert_eq!(format!("{v:?}"), "Pickle(0 containers)");
    }

    #[test]
    fn newobj_ex_describes_without_calling() {
        // cls, args (), kwargs {} NEWOBJ_EX
        let v = read(b"\x80\x04ctorch\nSize\n)}\x92.", "t").unwrap();
        assert!(matches!(&v.root, Value::Opaque(n) if n.as_str() == "torch.Size"));
        let err = read(b"\x80\x04cos\nsystem\n)}\x92.", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused"), "{err}");
    }

    #[test]
    fn unicode_escapes() {
        let v = read(b"V\\u00e9 \\U0001f600 \xe9\n.", "t").unwrap();
        assert!(
            matches!(&v.root, Value::Str(s) if &**s == "é 😀 é"),
            "{:?}",
            v.root
        );
        assert!(
            read(b"V\\u00zz\n.", "t")
                .unwrap_err()
                .to_string()
                .contains("bad \\u escape")
        );
    }

    #[test]
    fn frozenset_opcode() {
        // Protocol 4: MARK 1 2 FROZENSET
        let v = read(b"\x80\x04(K\x01K\x02\x91.", "t").unwrap();
        assert!(matches!(&v.root, Value::Set(s) if s.borrow().len() == 2));
    }

    #[test]
    fn dict_cycles_are_released() {
        // d = {}; d["self"] = d
        let p = read(b"\x80\x02}q\x00X\x04\x00\x00\x00selfh\x00s.", "t").unwrap();
        let Value::Dict(d) = &p.root else {
            panic!("not a dict")
        };
        let weak = Rc::downgrade(d);
        drop(p);
        assert!(weak.upgrade().is_none(), "the cycle was not broken");
    }

    #[test]
    fn long1_negative() {
        assert!(matches!(decode_long(&[0xff]), Value::Int(-1)));
        assert!(matches!(decode_long(&[0x00, 0x01]), Value::Int(256)));
    }

    fn framed(frame_len: u64, body: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x04\x95".to_vec();
        p.extend(frame_len.to_le_bytes());
        p.extend(body);
        p
    }

    #[test]
    fn frames_are_read_as_pickle_s_unframer_reads_them() {
        // A frame holding exactly its opcodes, another after it: fine.
        let mut p = framed(2, b"K\x07");
        p.extend(b"\x95\x01\x00\x00\x00\x00\x00\x00\x00.");
        assert!(matches!(read(&p, "t").unwrap().root, Value::Int(7)));
        // An argument that begins exactly where the frame ends is read from the stream, as
        // `_Unframer.read` does once the frame is used up.
        assert!(matches!(
            read(&framed(1, b"K\x07."), "t").unwrap().root,
            Value::Int(7)
        ));
        // BINUNICODE's length straddles the end of a 2-byte frame.
        let err = read(&framed(2, b"X\x01\x00\x00\x00a."), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runs past the end of its FRAME (byte 13)") && err.contains("at byte 12"),
            "{err}"
        );
        // A FRAME inside a frame that is not used up.
        let mut p = framed(20, b"\x95\x01\x00\x00\x00\x00\x00\x00\x00N.");
        p.extend([b'N'; 10]);
        let err = read(&p, "t").unwrap_err().to_string();
        assert!(
            err.contains(
                "FRAME begins at byte 11 of t, before the end of the current frame (byte 31)"
            ),
            "{err}"
        );
        // A frame longer than the stream.
        let err = read(&framed(1000, b"N."), "t").unwrap_err().to_string();
        assert!(
            err.contains("FRAME of 1000 bytes runs past the end"),
            "{err}"
        );
    }

    /// Review of issue 14: values CPython's readers would read differently are refused, not guessed.
    #[test]
    fn text_numbers_and_strings_read_as_cpython_reads_them() {
        let e = |p: &[u8]| read(p, "t").unwrap_err().to_string();
        // C's strtol(…, 0) reads I010 as 8, pickle.py refuses it.
        assert!(e(b"I010\n.").contains("INT \"010\" at byte 0 of t is not plain decimal"));
        assert!(e(b"I 7\n.").contains("not plain decimal"));
        assert!(e(b"L0x10L\n.").contains("LONG \"0x10\""));
        assert!(matches!(read(b"I-7\n.", "t").unwrap().root, Value::Int(-7)));
        assert!(matches!(read(b"I0\n.", "t").unwrap().root, Value::Int(0)));
        // STRING with an escape CPython would decode.
        assert!(e(b"S'a\\x41'\n.").contains("STRING with backslash escapes"));
        // raw-unicode-escape: an even run of backslashes is literal, an odd one escapes.
        let v = read(b"V\\\\u0041 \\\\\\u0041\n.", "t").unwrap();
        assert!(
            matches!(&v.root, Value::Str(s) if &**s == "\\\\u0041 \\\\A"),
            "{:?}",
            v.root
        );
        // BINSTRING is UTF-8, as torch.load's encoding says.
        assert!(e(b"U\x01\xe9.").contains("not UTF-8"));
    }

    #[test]
    fn allowlisted_calls_do_not_hide_tensors_or_change_bytes() {
        let e = |p: &[u8]| read(p, "t").unwrap_err().to_string();
        // _codecs.encode with another encoding than latin1.
        let mut p = b"\x80\x02c_codecs\nencode\n".to_vec();
        p.extend(b"X\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.");
        assert!(e(&p).contains("_codecs.encode other than"), "{}", e(&p));
        let mut p = b"\x80\x02c_codecs\nencode\n".to_vec();
        p.extend(b"X\x02\x00\x00\x00\xc3\xa9X\x06\x00\x00\x00latin1\x86R.");
        assert!(matches!(&read(&p, "t").unwrap().root, Value::Bytes(b) if b[..] == [0xe9]));
        // OrderedDict([...]) and Counter({...}) with containers: not an opaque value.
        let err = e(b"\x80\x02ccollections\nOrderedDict\n]K\x01K\x02\x86a\x85R.");
        assert!(
            err.contains("collections.OrderedDict with arguments"),
            "{err}"
        );
        // torch.Size((3, 4)) stays an opaque value.
        assert!(read(b"\x80\x02ctorch\nSize\nK\x03K\x04\x86\x85R.", "t").is_ok());
    }

    #[test]
    fn bytes_after_stop_are_refused() {
        let err = read(b"N.cos\nsystem\n.", "t").unwrap_err().to_string();
        assert!(
            err.contains("12 bytes follow the pickle's STOP at byte 1 of t"),
            "{err}"
        );
    }

    #[test]
    fn huge_ints_are_linear() {
        // A 1 MB LONG4: decoded to its size, not to 2.4 million decimal digits.
        let mut p = b"\x80\x02\x8b".to_vec();
        p.extend(1_000_000u32.to_le_bytes());
        p.extend(std::iter::repeat_n(0x5a, 1_000_000));
        p.push(b'.');
        let v = read(&p, "t").unwrap();
        assert!(matches!(&v.root, Value::BigInt(s) if &**s == "<int of 1000000 bytes>"));
        // At the edge of Python's 4300-digit limit: still decimal.
        let mut largest = vec![0xffu8; MAX_DECIMAL_BYTES];
        largest[MAX_DECIMAL_BYTES - 1] = 0x7f;
        assert!(matches!(&decode_long(&largest), Value::BigInt(s) if s.len() == 4299));
    }

    /// Found by the CPython differential (fuzz/differential): a MARK is a fence, as in CPython.
    #[test]
    fn a_mark_is_a_fence() {
        for p in [
            &b"\x80\x02}(2."[..],
            b"\x80\x02}(q\x00.",
            b"\x80\x02}(K\x01s.",
        ] {
            let err = read(p, "t").unwrap_err().to_string();
            assert!(err.contains("unexpected MARK found"), "{p:?}: {err}");
        }
        // POP removes a MARK on top, as load_pop does.
        assert!(read(b"\x80\x02}(0.", "t").is_ok());
        // An empty GLOBAL line is truncated data to CPython, not the global `.`.
        for p in [&b"c\n\n(L0\n."[..], b"(cx\n\n."] {
            let err = read(p, "t").unwrap_err().to_string();
            assert!(err.contains("an empty GLOBAL/INST line"), "{err}");
        }
    }

    #[test]
    fn refuses_global_before_reduce() {
        let data = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.";
        let err = read(data, "archive/data.pkl").unwrap_err();
        assert!(
            matches!(err, CheckpointError::UnsafeGlobal { ref module, ref name, .. } if module == "posix" && name == "system"),
            "{err}"
        );
    }
}
