//! Training on CUDA, in process (no scripts, no paths: this test binary runs as it is on a GPU
//! machine, see scripts/gpu_check.sh): after the move, the LSTM's weights are views into one
//! cuDNN buffer, which Adam updates and checkpoints save; and Adam's `pytorch` mode takes
//! PyTorch's CUDA default, the multi-tensor (`foreach`) update. Without a GPU, the CPU half
//! runs (flattening is a no-op there) and the rest is skipped, visibly.

use std::collections::BTreeMap;

use lstm_tch::{
    article::ArticleConfig,
    nn::{cross_entropy, RecurrentConfig, SequenceClassifier, SequenceClassifierConfig},
    train::optim::{Adam, AdamConfig, AdamImpl},
};
use tch::{nn, Device, Tensor};

/// The start of `t`'s storage: a view at storage offset 0 points there.
fn storage_base(t: &Tensor) -> usize {
    tch::no_grad(|| t.as_strided([1], [1], Some(0)).data_ptr() as usize)
}

fn bits(t: &Tensor) -> Vec<u32> {
    let values = Vec::<f32>::try_from(&t.to_device(Device::Cpu).flatten(0, -1)).unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

fn lstm_variables(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    vs.variables().into_iter().filter(|(name, _)| name.starts_with("lstm.")).collect()
}

/// A two-layer bidirectional classifier built on the CPU from a seed, moved to `device` and
/// flattened: (store, model, values before the move, whether it flattened).
fn moved(device: Device) -> (nn::VarStore, SequenceClassifier, BTreeMap<String, Vec<u32>>, bool) {
    let recurrent = RecurrentConfig {
        input_size: 3,
        hidden_size: 8,
        num_layers: 2,
        bidirectional: true,
        ..RecurrentConfig::default()
    };
    let config = SequenceClassifierConfig { recurrent, output_size: 2 };
    tch::manual_seed(5);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(&vs.root(), config).unwrap();
    let before = vs.variables().iter().map(|(name, t)| (name.clone(), bits(t))).collect();
    vs.set_device(device);
    let flattened = model.flatten_parameters().unwrap();
    (vs, model, before, flattened)
}

#[test]
fn flattening_is_a_no_op_on_the_cpu() {
    let _generator = crate::common::generator();
    let (vs, _, before, flattened) = moved(Device::Cpu);
    assert!(!flattened);
    let lstm = lstm_variables(&vs);
    let bases: Vec<usize> = lstm.values().map(storage_base).collect();
    assert!(bases.windows(2).all(|w| w[0] != w[1]), "CPU parameters keep their own storage");
    for (name, t) in vs.variables() {
        assert_eq!(bits(&t), before[&name], "{name}");
    }
}

#[test]
fn flattened_weights_are_views_into_one_buffer_that_training_and_saving_use() {
    if !crate::common::cuda_or_skip(
        "flattened_weights_are_views_into_one_buffer_that_training_and_saving_use",
    ) {
        return;
    }
    let _generator = crate::common::generator();
    let device = Device::Cuda(0);
    let (vs, model, before, flattened) = moved(device);
    assert!(flattened, "cuDNN is available, so the weights must be flattened");
    // Names, shapes and values unchanged; every LSTM parameter in one storage, the buffer.
    let lstm = lstm_variables(&vs);
    assert_eq!(lstm.len(), 16, "2 layers × 2 directions × 4");
    let base = storage_base(lstm.values().next().unwrap());
    for (name, t) in &lstm {
        assert_eq!(t.device(), device, "{name}");
        assert!(t.requires_grad(), "{name} is still a trainable parameter");
        assert_eq!(storage_base(t), base, "{name} is not a view into the flat buffer");
    }
    for (name, t) in vs.variables() {
        assert_eq!(bits(&t), before[&name], "{name}: flattening changed a value");
    }

    // A few Adam steps update the parameters in place, inside the buffer.
    let xs = Tensor::randn([4, 6, 3], (tch::Kind::Float, Device::Cpu)).to_device(device);
    let labels = Tensor::from_slice(&[0i64, 1, 1, 0]).to_device(device);
    let mut adam = Adam::new(AdamImpl::Pytorch, &vs, AdamConfig::default()).unwrap();
    for _ in 0..3 {
        let loss = cross_entropy(&model.forward(&xs).unwrap(), &labels).unwrap();
        adam.backward_step(&loss).unwrap();
    }
    for (name, t) in lstm_variables(&vs) {
        assert_eq!(storage_base(&t), base, "{name} left the buffer during training");
        // `out[:, -1]` reads the top layer's reverse direction after its first step, which
        // starts from h0 = 0: its W_hh gets no gradient (in PyTorch too), so Adam leaves it.
        if name != "lstm.weight_hh_l1_reverse" {
            assert_ne!(bits(&t), before[&name], "{name} was not updated");
        }
    }

    // A save reads the trained values through the buffer.
    let dir = crate::common::tempdir("cuda-flat-save");
    let file = dir.join("weights.safetensors");
    vs.save(&file).unwrap();
    let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(&file).unwrap().into_iter().collect();
    for (name, t) in vs.variables() {
        assert_eq!(bits(&saved[&name]), bits(&t), "{name}: the saved value differs");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The article's training on CUDA with `foreach`: the final parameters' bits.
fn article_on_cuda(foreach: Option<bool>) -> BTreeMap<String, Vec<u32>> {
    let config = ArticleConfig { epochs: 30, ..ArticleConfig::default() };
    let device = Device::Cuda(0);
    tch::manual_seed(0);
    let inputs = config.inputs().unwrap().to_device(device);
    let labels = Tensor::from_slice(&config.labels()).to_device(device);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(&vs.root(), config.model_config()).unwrap();
    vs.set_device(device);
    model.flatten_parameters().unwrap();
    let adam_config = AdamConfig { foreach, ..config.adam_config() };
    let mut adam = Adam::new(AdamImpl::Pytorch, &vs, adam_config).unwrap();
    for _ in 0..config.epochs {
        let loss = cross_entropy(&model.forward(&inputs).unwrap(), &labels).unwrap();
        adam.backward_step(&loss).unwrap();
    }
    vs.variables().iter().map(|(name, t)| (name.clone(), bits(t))).collect()
}

#[test]
fn pytorch_adam_defaults_to_the_foreach_update_on_cuda() {
    if !crate::common::cuda_or_skip("pytorch_adam_defaults_to_the_foreach_update_on_cuda") {
        return;
    }
    let _generator = crate::common::generator();
    let default = article_on_cuda(None);
    assert_eq!(default, article_on_cuda(Some(true)), "the CUDA default is not the foreach update");
    // The two paths round differently on CUDA (the 7.9e-5 loss differences): a
    // per-tensor division by a scalar is a multiplication by its reciprocal there.
    assert_ne!(default, article_on_cuda(Some(false)), "foreach and single-tensor updates agree on CUDA");
}
