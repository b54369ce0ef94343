//! The `arch` keys a bare state dict of Linear layers needs, read off its tensors: the Linear modules
//! (`<m>.weight` `[out, in]` with `<m>.bias` `[out]`) chained from the feature count, each layer's `in`
//! the previous one's `out`. Only a suggestion for `init` to print: the activation cannot be read from
//! tensors, and a module the chain does not use means the model is not a plain MLP (no suggestion).

use crate::checkpoint::CheckpointInfo;
use crate::engine::arch::natural_key;

/// The layers and the head of the chain: (trunk modules, head module, the widths along it).
pub struct Chain {
    pub layers: Vec<String>,
    pub head: String,
    pub widths: Vec<u64>,
}

/// The Linear chain of `info`'s state dict from `n_features` inputs, if every tensor belongs to it.
pub fn chain(info: &CheckpointInfo, state_dict: &str, n_features: u64) -> Option<Chain> {
    let table = info.state_dict_tensors(state_dict);
    let shape = |name: &str| table.iter().find(|t| t.0 == name).map(|t| t.2.clone());
    let mut linear: Vec<(String, u64, u64)> = table
        .iter()
        .filter_map(|(name, _, s)| {
            let module = name.strip_suffix(".weight")?;
            let [out, inp] = s.as_slice() else {
                return None;
            };
            (shape(&format!("{module}.bias")) == Some(vec![*out]))
                .then(|| (module.to_owned(), *out, *inp))
        })
        .collect();
    // Every tensor is a Linear layer's weight or bias: anything else is not a plain MLP.
    if table.is_empty() || linear.len() * 2 != table.len() {
        return None;
    }
    linear.sort_by_key(|l| natural_key(&l.0));
    let mut widths = vec![n_features];
    for (_, out, inp) in &linear {
        if Some(inp) != widths.last() {
            return None;
        }
        widths.push(*out);
    }
    let (head, trunk) = linear.split_last()?;
    Some(Chain {
        layers: trunk.iter().map(|l| l.0.clone()).collect(),
        head: head.0.clone(),
        widths,
    })
}

/// Where the state dict sits when the default lookup does not find the layers `arch` names: the
/// prefix before the first layer's `.weight` (a LightningModule's `self.model` puts the network under
/// `state_dict.model`). `None` when the default finds them, or nothing names them.
pub fn state_dict_key(info: &CheckpointInfo, default_key: &str) -> Option<String> {
    let weight = crate::engine::arch::first_weight(info.get("arch")?)?;
    let found = info.tensors.iter().find_map(|t| {
        if t.name == weight {
            Some(String::new())
        } else {
            t.name
                .strip_suffix(&weight)?
                .strip_suffix('.')
                .map(str::to_owned)
        }
    })?;
    let default = info.state_dict_key(default_key).unwrap_or_default();
    (found != default && !found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use crate::engine::arch::natural_key;

    #[test]
    fn module_indices_sort_as_numbers() {
        let mut names = vec!["net.10", "net.2", "net.0", "net.1.x"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["net.0", "net.1.x", "net.2", "net.10"]);
    }
}
