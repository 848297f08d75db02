// RandAugment (Cubuk et al. 2020) as timm configures it ("rand-m9-mstd0.5").
#pragma once

#include <ssld/registry.hpp>

namespace ssld::augment {
void register_randaugment(Registry& registry);
}
