//! Inference through oneDNN's fused LSTM: the recurrent layer run one direction at a time on
//! right-padded groups of texts of similar length, rather than on a packed batch.
//!
//! libtorch hands a float32 LSTM on the CPU to oneDNN when it runs on a padded batch (or a packed
//! one whose sequences all have the same length), and to its own step-by-step loop when it runs
//! on packed sequences of different lengths; one thread, 11 texts of 22–25 steps, 128 inputs and
//! 128 hidden units each way, max pooling: 3.5 ms packed against 1.2 ms here (2.1–2.8x from 4 to
//! 64 texts). A padded batch would let the padding into the answer of every text shorter than the
//! longest, so each direction runs as its own one-layer, one-direction LSTM on a batch whose
//! padding comes after each text's real steps, where it cannot reach them: the forward direction
//! on the texts as they are, the backward direction on each text reversed within its own length
//! (step t of a text of L steps reads step L − 1 − t, the padding staying at the end), its outputs
//! put back in order by the same permutation. Layers stack as in `nn.LSTM`: the next layer reads
//! both directions' outputs, joined.
//!
//! Padding costs time, so a batch of mixed lengths runs as groups of similar lengths, split where
//! [`GroupCost`] says the steps saved outweigh another call. Each group is padded to a shape of
//! few significant bits ([`round_up_to_three_bits`]): oneDNN builds a kernel for every shape it
//! meets (0.7 ms, more than running most batches) and keeps the last 1024.
//!
//! The values are PyTorch's up to rounding: oneDNN sums in another order than libtorch's loop.
//! Measured on 11,980 waimai reviews: probabilities within 1.8e-7 of the packed path's, which is
//! also how far the packed path moves between batches of 11 and 64; and a text's bits are the
//! same in every group of two or more texts, whatever the others (a text alone differs by up to
//! 1.5e-7).

use std::ops::Range;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use super::{check_lengths, Pooling, SequenceClassifier};
use crate::nn::Cell;

impl SequenceClassifier {
    /// Whether libtorch has a oneDNN path for this layer on tensors of `kind` on `device`: an
    /// LSTM, float32, on the CPU.
    pub fn has_onednn_path(&self, device: Device, kind: Kind) -> bool {
        self.config.recurrent.cell == Cell::Lstm && device == Device::Cpu && kind == Kind::Float
    }

    /// Whether [`Self::pooled_by_direction`] runs on oneDNN for `xs`: where
    /// [`Self::has_onednn_path`], outside autograd (a gradient must flow through PyTorch's own
    /// kernels).
    pub fn runs_on_onednn(&self, xs: &Tensor) -> bool {
        self.has_onednn_path(xs.device(), xs.kind()) && !xs.requires_grad()
    }

    /// What [`Self::pooled_packed`] gives in evaluation mode (no dropout), computed by oneDNN
    /// where [`Self::runs_on_onednn`] holds, each direction of each layer on its own and the texts
    /// in groups of similar length (see the module's comment), and by [`Self::pooled_packed`]
    /// elsewhere. `xs` [batch, max_len, input] (padded after each text), `lengths` [batch]
    /// (int64, CPU, each in 1..=max_len) give features [batch, hidden × directions].
    pub fn pooled_by_direction(&self, xs: &Tensor, lengths: &Tensor, pooling: Pooling) -> Result<Tensor> {
        if !self.runs_on_onednn(xs) {
            return self.pooled_packed(xs, lengths, false, pooling);
        }
        self.check_input(xs, 3)?;
        let lengths = check_lengths(lengths, xs.size()[0], xs.size()[1])?;
        // Longest first (a stable sort: equal lengths keep their order).
        let mut order: Vec<i64> = (0..lengths.len() as i64).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i as usize]));
        let sorted_lengths: Vec<i64> = order.iter().map(|&i| lengths[i as usize]).collect();
        let groups = GroupCost::MEASURED.groups(&sorted_lengths);
        let mut features = Vec::with_capacity(groups.len());
        for range in groups {
            let rows = Tensor::from_slice(&order[range.clone()]);
            features.push(self.pooled_group(
                &xs.f_index_select(0, &rows)?,
                &sorted_lengths[range],
                pooling,
            )?);
        }
        let features = Tensor::f_cat(&features, 0)?;
        if order.iter().enumerate().all(|(k, &i)| k as i64 == i) {
            return Ok(features);
        }
        // Row k of `features` is text order[k]: text i is the row where order[k] = i.
        let mut unsort = vec![0i64; order.len()];
        for (k, &i) in order.iter().enumerate() {
            unsort[i as usize] = k as i64;
        }
        Ok(features.f_index_select(0, &Tensor::from_slice(&unsort))?)
    }

    /// The features [batch, hidden × directions] of one group: `xs` [batch, ≥ longest, input]
    /// of `lengths` (longest first), run padded to [`round_up_to_three_bits`] of both sizes.
    fn pooled_group(&self, xs: &Tensor, lengths: &[i64], pooling: Pooling) -> Result<Tensor> {
        let batch = lengths.len() as i64;
        let longest = lengths.iter().copied().max().unwrap_or(1);
        let (rows, steps) = (round_up_to_three_bits(batch), round_up_to_three_bits(longest));
        let mut padded_lengths = lengths.to_vec();
        padded_lengths.resize(rows as usize, 1);
        let xs =
            xs.f_narrow(1, 0, longest)?.f_constant_pad_nd([0, 0, 0, steps - longest, 0, rows - batch])?;
        let out = self.layers_by_direction(&xs, &padded_lengths, steps)?.f_narrow(0, 0, batch)?;
        let hidden = self.config.recurrent.hidden_size;
        match pooling {
            Pooling::Last => {
                // The forward direction ends at each text's last real step; the backward one,
                // having read the text reversed, at its first.
                let last: Vec<i64> = (0..batch).map(|b| b * steps + lengths[b as usize] - 1).collect();
                let forward = out
                    .f_narrow(2, 0, hidden)?
                    .f_reshape([batch * steps, hidden])?
                    .f_index_select(0, &Tensor::from_slice(&last))?;
                if self.config.recurrent.bidirectional {
                    let backward = out.f_narrow(2, hidden, hidden)?.f_select(1, 0)?;
                    Ok(Tensor::f_cat(&[forward, backward], 1)?)
                } else {
                    Ok(forward)
                }
            }
            Pooling::Max => {
                // −∞ added at the padding: a vectorized broadcast, where masked_fill loops.
                let mask = step_mask(lengths, steps, f32::NEG_INFINITY, 0.0)?;
                Ok(out.f_add(&mask)?.f_amax([1], false)?)
            }
            Pooling::Mean => {
                let mask = step_mask(lengths, steps, 0.0, 1.0)?;
                let sums = out.f_mul(&mask)?.f_sum_dim_intlist(1, false, None::<Kind>)?;
                let counts: Vec<f32> = lengths.iter().map(|&l| l as f32).collect();
                Ok(sums.f_div(&Tensor::from_slice(&counts).f_view([batch, 1])?)?)
            }
        }
    }

    /// The last layer's outputs [batch, steps, hidden × directions] of `xs` [batch, steps,
    /// input], every direction of every layer a one-layer, one-direction LSTM; the outputs at
    /// the padding (each row's steps from its length on) are meaningless.
    fn layers_by_direction(&self, xs: &Tensor, lengths: &[i64], steps: i64) -> Result<Tensor> {
        let config = &self.config.recurrent;
        let batch = lengths.len() as i64;
        let directions = config.num_directions();
        // Flattened [batch × steps] rows: row b's step t reads step lengths[b] − 1 − t of the
        // same row within its length; the padding stays where it is.
        let reversal: Vec<i64> = (0..batch)
            .flat_map(|b| {
                let length = lengths[b as usize];
                (0..steps).map(move |t| b * steps + if t < length { length - 1 - t } else { t })
            })
            .collect();
        let reversal = Tensor::from_slice(&reversal);
        let reverse = |t: &Tensor| -> Result<Tensor> {
            let width = t.size()[2];
            Ok(t.f_reshape([batch * steps, width])?
                .f_index_select(0, &reversal)?
                .f_view([batch, steps, width])?)
        };
        let zeros = Tensor::f_zeros([1, batch, config.hidden_size], (Kind::Float, Device::Cpu))?;
        let weights = self.rnn.parameters();
        let mut input = xs.shallow_clone();
        for layer in 0..config.num_layers {
            let weights_of = |direction: i64| {
                let first = ((layer * directions + direction) * 4) as usize;
                weights[first..first + 4].iter().collect::<Vec<_>>()
            };
            let one_direction = |input: &Tensor, direction: i64| -> Result<Tensor> {
                let (output, _, _) = input.f_lstm(
                    &[&zeros, &zeros],
                    &weights_of(direction),
                    true,
                    1,
                    0.0,
                    false,
                    false,
                    true,
                )?;
                Ok(output)
            };
            let forward = one_direction(&input, 0).with_context(|| format!("LSTM layer {layer}, forward"))?;
            input = if config.bidirectional {
                let backward = reverse(&one_direction(&reverse(&input)?, 1)?)
                    .with_context(|| format!("LSTM layer {layer}, backward"))?;
                Tensor::f_cat(&[forward, backward], 2)?
            } else {
                forward
            };
        }
        Ok(input)
    }
}

/// [batch, steps, 1] holding `real` at each text's steps and `padding` after them.
fn step_mask(lengths: &[i64], steps: i64, padding: f32, real: f32) -> Result<Tensor> {
    let values: Vec<f32> =
        lengths.iter().flat_map(|&l| (0..steps).map(move |t| if t < l { real } else { padding })).collect();
    Ok(Tensor::from_slice(&values).f_view([lengths.len() as i64, steps, 1])?)
}

/// What one oneDNN call costs, in microseconds, on one thread (one direction; both cost the
/// same): `call` + padded steps × (`step` + `row_step` × padded rows).
#[derive(Debug, Clone, Copy, PartialEq)]
struct GroupCost {
    call: f64,
    step: f64,
    row_step: f64,
}

impl GroupCost {
    /// Fitted to one-direction LSTMs of 128 inputs and 128 units, 1 to 64 rows of 4 to 128
    /// steps (AMD EPYC, 2026-12-07): relative costs are what matter, and they change little
    /// with the sizes.
    const MEASURED: GroupCost = GroupCost { call: 95.0, step: 2.0, row_step: 1.45 };

    /// The cost of running texts of these `lengths` (longest first) as one padded group.
    fn of(&self, lengths: &[i64]) -> f64 {
        let rows = round_up_to_three_bits(lengths.len() as i64) as f64;
        let steps = round_up_to_three_bits(lengths[0]) as f64;
        self.call + steps * (self.step + self.row_step * rows)
    }

    /// The split of texts of `lengths` (longest first, at least one) into consecutive groups
    /// that costs least: a dynamic programme over where each group ends.
    fn groups(&self, lengths: &[i64]) -> Vec<Range<usize>> {
        let n = lengths.len();
        // best[j]: the least cost of the first j texts, and where its last group starts.
        let mut best = vec![(0.0_f64, 0usize); n + 1];
        for j in 1..=n {
            best[j] = (0..j)
                .map(|i| (best[i].0 + self.of(&lengths[i..j]), i))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, 0));
        }
        let mut groups = vec![];
        let mut end = n;
        while end > 0 {
            let start = best[end].1;
            groups.push(start..end);
            end = start;
        }
        groups.reverse();
        groups
    }
}

/// `n` rounded up to a number of at most three significant bits (n itself up to 8; then 10, 12,
/// 14, 16, 20, 24, 28, 32, 40, ...): at most a quarter more, and 28 shapes up to 256.
fn round_up_to_three_bits(n: i64) -> i64 {
    if n <= 8 {
        return n;
    }
    let shift = 63 - n.leading_zeros() as i64 - 2;
    ((n + (1 << shift) - 1) >> shift) << shift
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::{round_up_to_three_bits, GroupCost};

    #[test]
    fn shapes_round_up_to_three_significant_bits() {
        let rounded: Vec<i64> = [1, 8, 9, 10, 11, 16, 17, 21, 33, 64, 65, 255, 256, 257]
            .into_iter()
            .map(round_up_to_three_bits)
            .collect();
        assert_eq!(rounded, [1, 8, 10, 10, 12, 16, 20, 24, 40, 64, 80, 256, 256, 320]);
        for n in 1..5000 {
            let r = round_up_to_three_bits(n);
            assert!(r >= n && r * 4 <= n * 5 + 4, "{n} → {r}");
            assert!(r <= 8 || r.count_ones() <= 3, "{n} → {r}");
        }
    }

    #[test]
    fn groups_cover_every_text_once_and_split_only_where_it_pays() {
        let cost = GroupCost::MEASURED;
        // Equal lengths: one group. One very long text among short ones: alone.
        let one_group = |n: usize| vec![Range { start: 0, end: n }];
        assert_eq!(cost.groups(&[25; 12]), one_group(12));
        assert_eq!(cost.groups(&[250, 20, 19, 18, 18, 17, 16, 15]), [0..1, 1..8]);
        assert_eq!(cost.groups(&[7]), one_group(1));
        let lengths: Vec<i64> = (0..64).map(|i| 256 - 4 * i).collect();
        let groups = cost.groups(&lengths);
        assert_eq!(groups.first().map(|g| g.start), Some(0));
        assert_eq!(groups.last().map(|g| g.end), Some(64));
        assert!(groups.windows(2).all(|w| w[0].end == w[1].start && w[0].start < w[0].end));
        // No worse than one group, or one text per group.
        let total: f64 = groups.iter().map(|g| cost.of(&lengths[g.clone()])).sum();
        let singles: f64 = (0..64).map(|i| cost.of(&lengths[i..=i])).sum();
        assert!(total <= cost.of(&lengths) && total <= singles, "{total}");
    }
}
