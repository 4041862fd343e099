#include "dexloop/control/action_queue.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dexloop::control {

bool parse_aggregate(std::string_view name, Aggregate* out) {
  for (Aggregate a : {Aggregate::kWeightedAverage, Aggregate::kLatestOnly, Aggregate::kAverage,
                      Aggregate::kConservative, Aggregate::kTemporalEnsemble}) {
    if (aggregate_name(a) == name) {
      *out = a;
      return true;
    }
  }
  return false;
}

std::string_view aggregate_name(Aggregate aggregate) {
  switch (aggregate) {
    case Aggregate::kWeightedAverage:
      return "weighted_average";
    case Aggregate::kLatestOnly:
      return "latest_only";
    case Aggregate::kAverage:
      return "average";
    case Aggregate::kConservative:
      return "conservative";
    case Aggregate::kTemporalEnsemble:
      return "temporal_ensemble";
  }
  return "?";
}

ActionQueue::ActionQueue(ActionQueueOptions options) : options_(options) {
  if (options_.action_dim < 1 || options_.action_dim > kMaxActionDim) {
    throw std::invalid_argument("action_dim must be 1.." + std::to_string(kMaxActionDim) +
                                ", got " + std::to_string(options_.action_dim));
  }
  if (options_.capacity < 1) {
    throw std::invalid_argument("capacity must be at least 1, got " +
                                std::to_string(options_.capacity));
  }
  if (!std::isfinite(options_.ensemble_coeff)) {
    throw std::invalid_argument("ensemble_coeff must be finite");
  }
  // ACTTemporalEnsembler: torch.exp(-coeff * torch.arange(chunk_size)) in float32, then cumsum.
  ensemble_weights_.resize(options_.capacity);
  ensemble_weights_cumsum_.resize(options_.capacity);
  const float coeff = static_cast<float>(options_.ensemble_coeff);
  float sum = 0.0f;
  for (int i = 0; i < options_.capacity; ++i) {
    ensemble_weights_[i] = std::exp(-coeff * static_cast<float>(i));
    sum += ensemble_weights_[i];
    ensemble_weights_cumsum_[i] = sum;
  }
  resize(current_);
  resize(merged_);
  for (Buffer& buffer : buffers_) resize(buffer);
}

void ActionQueue::resize(Buffer& buffer) const {
  buffer.values.assign(static_cast<size_t>(options_.capacity) * options_.action_dim, 0.0f);
  buffer.weights.assign(options_.capacity, 0);
  buffer.observed_at_ns.assign(options_.capacity, 0);
  buffer.received_at_ns.assign(options_.capacity, 0);
}

int ActionQueue::push(int64_t start_timestep, const float* actions, int count,
                      int64_t observed_at_ns, int64_t received_at_ns) {
  if (count < 0 || count > options_.capacity) {
    throw std::invalid_argument("a chunk of " + std::to_string(count) +
                                " actions does not fit the queue's capacity of " +
                                std::to_string(options_.capacity));
  }
  if (start_timestep < 0) {
    throw std::invalid_argument("timesteps start at 0, got " + std::to_string(start_timestep));
  }
  std::lock_guard<std::mutex> lock(producer_mutex_);
  const int dim = options_.action_dim;
  const int64_t executed = last_taken_.load(std::memory_order_acquire);
  const int skip = static_cast<int>(std::clamp<int64_t>(executed + 1 - start_timestep, 0, count));
  stale_.fetch_add(static_cast<uint64_t>(skip), std::memory_order_relaxed);

  merged_.start = start_timestep + skip;
  merged_.count = count - skip;
  for (int i = 0; i < merged_.count; ++i) {
    const int64_t timestep = merged_.start + i;
    const float* incoming = actions + static_cast<size_t>(skip + i) * dim;
    float* out = merged_.values.data() + static_cast<size_t>(i) * dim;
    const int64_t old_index = timestep - current_.start;
    const bool queued = old_index >= 0 && old_index < current_.count && timestep > executed;
    merged_.observed_at_ns[i] = observed_at_ns;
    merged_.received_at_ns[i] = received_at_ns;
    if (!queued) {
      std::copy(incoming, incoming + dim, out);
      merged_.weights[i] = 1;
      continue;
    }
    const float* old = current_.values.data() + static_cast<size_t>(old_index) * dim;
    const int32_t seen = current_.weights[old_index];
    switch (options_.aggregate) {
      case Aggregate::kWeightedAverage:
        for (int d = 0; d < dim; ++d) out[d] = 0.3f * old[d] + 0.7f * incoming[d];
        break;
      case Aggregate::kLatestOnly:
        std::copy(incoming, incoming + dim, out);
        break;
      case Aggregate::kAverage:
        for (int d = 0; d < dim; ++d) out[d] = 0.5f * old[d] + 0.5f * incoming[d];
        break;
      case Aggregate::kConservative:
        for (int d = 0; d < dim; ++d) out[d] = 0.7f * old[d] + 0.3f * incoming[d];
        break;
      case Aggregate::kTemporalEnsemble: {
        // ACTTemporalEnsembler.update: mean *= cumsum[n - 1]; mean += new * w[n]; mean /= cumsum[n]
        // with n the predictions already averaged in (capped at the weights' length).
        const int n = std::min<int32_t>(seen, options_.capacity - 1);
        const float keep = ensemble_weights_cumsum_[n - 1];
        const float add = ensemble_weights_[n];
        const float total = ensemble_weights_cumsum_[n];
        for (int d = 0; d < dim; ++d) {
          float mean = old[d] * keep;
          mean += incoming[d] * add;
          out[d] = mean / total;
        }
        break;
      }
    }
    merged_.weights[i] = std::min<int32_t>(seen + 1, options_.capacity);
  }
  std::swap(current_, merged_);
  publish();
  chunks_.fetch_add(1, std::memory_order_relaxed);
  return current_.count;
}

void ActionQueue::clear() {
  std::lock_guard<std::mutex> lock(producer_mutex_);
  current_.start = last_taken_.load(std::memory_order_acquire) + 1;
  current_.count = 0;
  publish();
}

void ActionQueue::publish() {
  Buffer& back = buffers_[back_];
  const int dim = options_.action_dim;
  back.start = current_.start;
  back.count = current_.count;
  std::copy_n(current_.values.begin(), static_cast<size_t>(current_.count) * dim,
              back.values.begin());
  std::copy_n(current_.observed_at_ns.begin(), current_.count, back.observed_at_ns.begin());
  std::copy_n(current_.received_at_ns.begin(), current_.count, back.received_at_ns.begin());
  published_end_.store(current_.start + current_.count, std::memory_order_release);
  // Hand the written buffer over as the fresh middle one and take the old middle to write next.
  back_ =
      middle_.exchange(static_cast<uint8_t>(back_ | kFresh), std::memory_order_acq_rel) & ~kFresh;
}

bool ActionQueue::take(float* out, TakenAction* taken) {
  if (middle_.load(std::memory_order_acquire) & kFresh) {
    front_ = middle_.exchange(front_, std::memory_order_acq_rel) & ~kFresh;
  }
  const Buffer& front = buffers_[front_];
  const int64_t next = last_taken_.load(std::memory_order_relaxed) + 1;
  const int64_t index = std::max<int64_t>(next - front.start, 0);
  if (index >= front.count) return false;
  const int dim = options_.action_dim;
  std::copy_n(front.values.begin() + index * dim, dim, out);
  if (taken != nullptr) {
    taken->timestep = front.start + index;
    taken->observed_at_ns = front.observed_at_ns[index];
    taken->received_at_ns = front.received_at_ns[index];
  }
  last_taken_.store(front.start + index, std::memory_order_release);
  return true;
}

int ActionQueue::depth() const {
  const int64_t remaining = published_end_.load(std::memory_order_acquire) - 1 -
                            last_taken_.load(std::memory_order_acquire);
  return remaining > 0 ? static_cast<int>(remaining) : 0;
}

}  // namespace dexloop::control
