// The queue of future actions between a policy (any thread, usually Python receiving chunks) and
// the control loop's tick, with LeRobot's asynchronous-inference semantics.
//
// Actions are keyed by timestep: the count of actions the loop has executed. A chunk predicted
// from an observation taken at timestep t holds the actions for t, t+1, ...; when it arrives
// (LeRobot's RobotClient._aggregate_action_queues):
//  - actions for timesteps the loop has already executed are dropped;
//  - an action for a timestep still queued is merged with the queued one by the aggregate
//    function (weighted_average 0.3 old + 0.7 new, latest_only, average, conservative 0.7 old +
//    0.3 new), or by ACT's temporal ensembling (the running mean with weights exp(-coeff * i),
//    i = 0 for the oldest prediction: ACTTemporalEnsembler's float32 arithmetic);
//  - the queue becomes the new chunk's actions: queued actions it does not cover are dropped.
// The tick takes the action of the next timestep, if any (take()).
//
// Producer and consumer never wait for each other: the producer merges into its own copy and
// publishes it through a triple buffer (one atomic exchange); the consumer swaps in the newest
// published buffer, reads it, and advances an atomic cursor. The tick neither locks nor allocates.
// Producers are serialised among themselves by a mutex the consumer never touches.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace dexloop::control {

enum class Aggregate : uint8_t {
  kWeightedAverage,  // 0.3 * old + 0.7 * new (LeRobot's default)
  kLatestOnly,       // new
  kAverage,          // 0.5 * old + 0.5 * new
  kConservative,     // 0.7 * old + 0.3 * new
  kTemporalEnsemble  // ACT's temporal ensembling with `ensemble_coeff`
};

// LeRobot's aggregate_fn_name values, and "temporal_ensemble"; nullptr-free: false when unknown.
bool parse_aggregate(std::string_view name, Aggregate* out);
std::string_view aggregate_name(Aggregate aggregate);

struct ActionQueueOptions {
  int action_dim = 6;
  int capacity = 1024;  // most timesteps one chunk may hold
  Aggregate aggregate = Aggregate::kWeightedAverage;
  double ensemble_coeff = 0.01;  // kTemporalEnsemble only
};

// What take() returns besides the values.
struct TakenAction {
  int64_t timestep = -1;
  int64_t observed_at_ns = 0;  // capture time of the newest observation that predicted it
  int64_t received_at_ns = 0;  // when its chunk reached the queue
};

class ActionQueue {
 public:
  // Throws std::invalid_argument for a dimension outside 1..kMaxActionDim or a capacity < 1.
  explicit ActionQueue(ActionQueueOptions options);

  static constexpr int kMaxActionDim = 64;

  const ActionQueueOptions& options() const { return options_; }

  // --- Producer side (any thread). `actions` holds `count` rows of action_dim float32 values, for
  // timesteps start_timestep, start_timestep + 1, ... Returns how many of them were queued (the
  // others were for timesteps already executed). Throws std::invalid_argument when count exceeds
  // the capacity or start_timestep is negative.
  int push(int64_t start_timestep, const float* actions, int count, int64_t observed_at_ns,
           int64_t received_at_ns);
  // Drops every queued action (the cursor stays).
  void clear();

  // --- Consumer side (one thread: the tick). The action for the smallest queued timestep after
  // the last one taken, into out[0..action_dim); false when none is queued.
  bool take(float* out, TakenAction* taken);

  // --- Readable from any thread.
  int64_t last_taken() const { return last_taken_.load(std::memory_order_acquire); }
  // Queued actions after the last one taken (LeRobot's queue size).
  int depth() const;
  uint64_t chunks_received() const { return chunks_.load(std::memory_order_relaxed); }
  uint64_t actions_dropped_stale() const { return stale_.load(std::memory_order_relaxed); }

 private:
  struct Buffer {
    int64_t start = 0;  // timestep of entry 0
    int count = 0;
    std::vector<float> values;     // count x action_dim
    std::vector<int32_t> weights;  // predictions averaged into each entry (temporal ensembling)
    std::vector<int64_t> observed_at_ns;
    std::vector<int64_t> received_at_ns;
  };
  void resize(Buffer& buffer) const;
  void publish();

  ActionQueueOptions options_;
  std::vector<float> ensemble_weights_;         // exp(-coeff * i), float32 as torch computes them
  std::vector<float> ensemble_weights_cumsum_;  // their running sums, float32

  // Producer state: the queue as last published, merged into `merged_`.
  std::mutex producer_mutex_;
  Buffer current_;
  Buffer merged_;

  // Triple buffer: the producer writes buffers_[back_], the consumer reads buffers_[front_], and
  // `middle_` holds the third index with kFresh set when it is newer than the consumer's.
  static constexpr uint8_t kFresh = 4;
  Buffer buffers_[3];
  uint8_t back_ = 0;
  uint8_t front_ = 1;
  std::atomic<uint8_t> middle_{2};

  std::atomic<int64_t> last_taken_{-1};
  std::atomic<int64_t> published_end_{0};  // one past the last timestep published
  std::atomic<uint64_t> chunks_{0};
  std::atomic<uint64_t> stale_{0};
};

}  // namespace dexloop::control
