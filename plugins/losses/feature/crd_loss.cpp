// CRD, "Contrastive Representation Distillation" (Tian et al. 2020): the student's and the
// teacher's features embedded (Linear + L2 normalization) into `feat_dim`, each contrasted with
// the other side's memory of embeddings over the whole training set: the sample's own row is the
// positive, `nce_k` rows drawn uniformly are the negatives, and the NCE loss of both directions
// is summed. The memory rows are keyed by the batch's sample ids and updated with momentum.
#include "feature_loss.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <unordered_map>

namespace ssld::feature {
namespace {

using torch::Tensor;
namespace F = torch::nn::functional;

class CrdLoss : public FeatureLoss {
 public:
  CrdLoss(const ssld::Options& options, const ssld::Context& context)
      : FeatureLoss(options, Connector::Never), feat_dim_(options.get_int("feat_dim")), nce_k_(options.get_int("nce_k")),
        nce_t_(options.get_float("nce_t")), nce_m_(options.get_float("nce_m")), seed_(context.seed()) {
    if (student_.size() != 1) throw ssld::option_error(options, "student", "CRD contrasts one pair of features");
    if (feat_dim_ < 1) throw ssld::option_error(options, "feat_dim", "feat_dim must be at least 1");
    if (nce_k_ < 1) throw ssld::option_error(options, "nce_k", "nce_k must be at least 1");
    if (nce_t_ <= 0) throw ssld::option_error(options, "nce_t", "nce_t must be positive");
    if (nce_m_ < 0 || nce_m_ >= 1) throw ssld::option_error(options, "nce_m", "nce_m must be in [0, 1)");
  }

 protected:
  void build(const std::vector<Shape>& student, const std::vector<Shape>& teacher) override {
    if (dataset_size_ < 1) refuse(0, student[0], teacher[0], "CRD needs the training set's size for its memory");
    auto width = [](const Shape& shape) {
      int64_t n = 1;
      for (size_t d = 1; d < shape.size(); ++d) n *= shape[d];
      return n;
    };
    embed_student_ = modules_.register_module("embed_student", torch::nn::Linear(width(student[0]), feat_dim_));
    embed_teacher_ = modules_.register_module("embed_teacher", torch::nn::Linear(width(teacher[0]), feat_dim_));
    // The memories start uniform in [-stdv, stdv], stdv = 1 / sqrt(feat_dim / 3), as the paper's code.
    const double stdv = 1.0 / std::sqrt(static_cast<double>(feat_dim_) / 3.0);
    memory_student_ = modules_.register_buffer("memory_student", torch::rand({dataset_size_, feat_dim_}) * 2 * stdv - stdv);
    memory_teacher_ = modules_.register_buffer("memory_teacher", torch::rand({dataset_size_, feat_dim_}) * 2 * stdv - stdv);
    // The NCE normalizers, set from the first batch (-1 until then), and the number of batches
    // seen, which seeds each batch's negatives: all saved, so a resumed run draws the same.
    z_student_ = modules_.register_buffer("z_student", torch::full({}, -1.0));
    z_teacher_ = modules_.register_buffer("z_teacher", torch::full({}, -1.0));
    batches_ = host_buffer("batches", torch::zeros({}, torch::kInt64));
    // Sample ids are stable keys, not row numbers (a folder dataset hashes paths): row r holds
    // the sample whose id is row_ids[r], rows given out in the order ids first appear.
    row_ids_ = host_buffer("row_ids", torch::full({dataset_size_}, -1, torch::kInt64));
  }

  Tensor term(const std::vector<Tensor>& s, const std::vector<Tensor>& t, const ssld::LossInputs& inputs) override {
    if (inputs.sample_ids == nullptr || !inputs.sample_ids->defined())
      throw ssld::Error("CRD needs the batch's sample ids (an SDK ABI 1.2 host gives them)");
    const Tensor ids = inputs.sample_ids->to(torch::kCPU, torch::kInt64).contiguous();
    if (ids.numel() != s[0].size(0))
      throw ssld::Error("CRD got " + std::to_string(ids.numel()) + " sample ids for a batch of " +
                        std::to_string(s[0].size(0)));
    const Tensor own_rows = rows_of(ids);
    const Tensor v_student = F::normalize(embed_student_->forward(s[0].flatten(1)), F::NormalizeFuncOptions().dim(1));
    const Tensor v_teacher = F::normalize(embed_teacher_->forward(t[0].flatten(1)), F::NormalizeFuncOptions().dim(1));
    const Tensor rows = contrast_rows(own_rows).to(v_student.device());
    // The student's embedding against the teacher's memory and the other way round.
    // The normalizers are set once, from the first batch (or restored): read them from the
    // device only until then.
    const bool set_z = !z_known_ && z_student_.item<double>() < 0;
    z_known_ = true;
    const Tensor out_student = scores(memory_teacher_, rows, v_student, z_student_, set_z);
    const Tensor out_teacher = scores(memory_student_, rows, v_teacher, z_teacher_, set_z);
    const Tensor loss = nce_loss(out_student) + nce_loss(out_teacher);
    if (modules_.is_training()) {  // an evaluation pass leaves the memories and the draws alone
      update(memory_student_, own_rows.to(v_student.device()), v_student);
      update(memory_teacher_, own_rows.to(v_student.device()), v_teacher);
      batches_.add_(1);
    }
    return loss;
  }

 private:
  // The memory row of each id, giving new ids the next free rows. The map caches row_ids and is
  // rebuilt when the buffer was written from outside (a checkpoint restored: its version moved).
  Tensor rows_of(const Tensor& ids) {
    if (row_ids_._version() != cached_version_) {
      row_of_id_.clear();
      const int64_t* row_ids = row_ids_.data_ptr<int64_t>();
      for (int64_t r = 0; r < dataset_size_ && row_ids[r] >= 0; ++r) row_of_id_[row_ids[r]] = r;
      cached_version_ = row_ids_._version();
    }
    int64_t* row_ids = row_ids_.data_ptr<int64_t>();  // written in place: the version stays
    Tensor rows = torch::empty({ids.numel()}, torch::kInt64);
    int64_t* out = rows.data_ptr<int64_t>();
    const int64_t* in = ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < ids.numel(); ++i) {
      auto [found, added] = row_of_id_.try_emplace(in[i], static_cast<int64_t>(row_of_id_.size()));
      if (added) {
        if (found->second >= dataset_size_) {
          row_of_id_.erase(found);
          throw ssld::Error("CRD saw more distinct sample ids than the " + std::to_string(dataset_size_) +
                            " samples of the training set (id " + std::to_string(in[i]) + ")");
        }
        row_ids[found->second] = in[i];
      }
      out[i] = found->second;
    }
    return rows;
  }

  // [N, K + 1] memory rows: the sample's own first, then nce_k drawn uniformly (with
  // replacement) by a CPU generator seeded from the run's seed and the batch count.
  Tensor contrast_rows(const Tensor& own_rows) {
    const uint64_t key = seed_ ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(batches_.item<int64_t>() + 1));
    auto generator = at::make_generator<at::CPUGeneratorImpl>(key);
    Tensor rows = torch::randint(0, dataset_size_, {own_rows.size(0), nce_k_ + 1}, generator, torch::kInt64);
    rows.select(1, 0).copy_(own_rows);
    return rows;
  }
  // exp(<memory row, v> / T) / Z, with Z = mean * dataset size fixed at the first batch.
  Tensor scores(const Tensor& memory, const Tensor& rows, const Tensor& v, Tensor& z, bool set_z) {
    const Tensor weights = memory.index_select(0, rows.reshape({-1})).view({rows.size(0), rows.size(1), feat_dim_});
    const Tensor out = torch::bmm(weights, v.unsqueeze(2)).squeeze(2).div(nce_t_).exp();
    if (set_z) z.fill_(out.detach().mean().item<double>() * static_cast<double>(dataset_size_));
    return out / z.to(out.scalar_type());
  }
  // The NCE loss with a uniform noise distribution P_n = 1 / dataset size: -[log D(positive) +
  // sum log (1 - D(negative))] averaged over the batch, D(x) = x / (x + K P_n).
  Tensor nce_loss(const Tensor& out) const {
    const double noise = static_cast<double>(nce_k_) / static_cast<double>(dataset_size_), eps = 1e-7;
    const Tensor positive = out.select(1, 0), negative = out.narrow(1, 1, nce_k_);
    const Tensor log_d1 = (positive / (positive + noise + eps)).log();
    const Tensor log_d0 = (noise / (negative + noise + eps)).log();
    return -(log_d1.sum() + log_d0.sum()) / static_cast<double>(out.size(0));
  }
  // memory[id] = normalize(m memory[id] + (1 - m) v).
  void update(Tensor& memory, const Tensor& ids, const Tensor& v) const {
    torch::NoGradGuard no_grad;
    const Tensor mixed = memory.index_select(0, ids) * nce_m_ + v.detach() * (1 - nce_m_);
    memory.index_copy_(0, ids, F::normalize(mixed, F::NormalizeFuncOptions().dim(1)));
  }

  int64_t feat_dim_, nce_k_;
  double nce_t_, nce_m_;
  uint64_t seed_;
  torch::nn::Linear embed_student_{nullptr}, embed_teacher_{nullptr};
  Tensor memory_student_, memory_teacher_, z_student_, z_teacher_, batches_, row_ids_;
  std::unordered_map<int64_t, int64_t> row_of_id_;
  int64_t cached_version_ = -1;
  bool z_known_ = false;  // the normalizers hold their value (set or restored)
};

}  // namespace

void add_crd(ssld::Registry& registry) {
  ssld::add_component<ssld::Loss, CrdLoss>(
      registry, "crd",
      "Contrastive representation distillation (Tian et al. 2020): NCE against memories of both networks' "
      "embeddings over the training set, keyed by sample id.",
      feature_schema(0.8, "multiplies the summed NCE losses (RepDistiller: 0.8)", /*connector_option=*/false)
          .add_int("feat_dim", 128, "embedding width (the paper: 128)")
          .add_int("nce_k", 16384, "negatives per sample (the paper: 16384)")
          .add_float("nce_t", 0.07, "temperature (the paper: 0.07)")
          .add_float("nce_m", 0.5, "momentum of the memory update (the paper: 0.5)"));
}

}  // namespace ssld::feature
