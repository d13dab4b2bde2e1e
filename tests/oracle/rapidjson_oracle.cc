// What rapidjson 1.1.0 reads from a request body with TF Serving's parse flags, and how its
// PrettyWriter writes the value back: the reference tests/test_rest_json_oracle.py checks
// server/rest/json_reader.py and json_writer.py against.
//
// Input (stdin), any number of records: a mode letter ('p': parse, 'w': parse then write), a space,
// the body's length in bytes, a newline, then the body's bytes.
// Output (stdout), one line per record:
//   parse ok:  "V" then the value as space-separated tokens: n t f, i<int64>, u<uint64>,
//              d<the double's 64 bits in hex>, s<string bytes in hex>, k<key bytes in hex>, [ ] { }
//   write ok:  "W" then the PrettyWriter text in hex ("W!" and the text so far when the writer
//              stopped, e.g. at NaN; "W-" when nested too deep to write)
//   error:     "E <code> <offset> <message>", the message as GetParseError_En gives it
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "rapidjson/document.h"
#include "rapidjson/encodedstream.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"

namespace {

constexpr unsigned kTfServingFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseNanAndInfFlag | rapidjson::kParseStopWhenDoneFlag;

void Hex(std::string* out, const char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    out->push_back(kDigits[c >> 4]);
    out->push_back(kDigits[c & 15]);
  }
}

void Scalar(const rapidjson::Value& v, std::string* out) {
  char buf[64];
  if (v.IsNull()) {
    out->append("n");
  } else if (v.IsTrue()) {
    out->append("t");
  } else if (v.IsFalse()) {
    out->append("f");
  } else if (v.IsString()) {
    out->append("s");
    Hex(out, v.GetString(), v.GetStringLength());
  } else if (v.IsDouble()) {
    double d = v.GetDouble();
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    std::snprintf(buf, sizeof buf, "d%016" PRIx64, bits);
    out->append(buf);
  } else if (v.IsInt64()) {
    std::snprintf(buf, sizeof buf, "i%" PRId64, v.GetInt64());
    out->append(buf);
  } else {
    std::snprintf(buf, sizeof buf, "u%" PRIu64, v.GetUint64());
    out->append(buf);
  }
}

// A walk with a stack of our own: documents nested 500,000 deep would overflow the call stack.
std::string Tokens(const rapidjson::Value& root) {
  std::string out = "V";
  struct Frame { const rapidjson::Value* v; rapidjson::SizeType next; };
  std::vector<Frame> stack;
  auto open = [&](const rapidjson::Value& v) {
    out.append(" ");
    if (v.IsArray()) { out.append("["); stack.push_back({&v, 0}); }
    else if (v.IsObject()) { out.append("{"); stack.push_back({&v, 0}); }
    else Scalar(v, &out);
  };
  open(root);
  while (!stack.empty()) {
    Frame& f = stack.back();
    const rapidjson::Value* v = f.v;
    if (v->IsArray()) {
      if (f.next == v->Size()) { out.append(" ]"); stack.pop_back(); continue; }
      open((*v)[f.next++]);
    } else {
      if (f.next == v->MemberCount()) { out.append(" }"); stack.pop_back(); continue; }
      const rapidjson::Value::ConstMemberIterator m = v->MemberBegin() + f.next++;
      out.append(" k");
      Hex(&out, m->name.GetString(), m->name.GetStringLength());
      open(m->value);
    }
  }
  return out;
}

// rapidjson's writer recurses: documents nested deeper than this are not written ("W-").
constexpr size_t kMaxWriteDepth = 1000;

size_t Depth(const std::string& tokens) {
  size_t depth = 0, top = 0;
  for (char c : tokens) {
    if (c == '[' || c == '{') top = std::max(top, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return top;
}

std::string Written(const rapidjson::Value& v) {
  if (Depth(Tokens(v)) > kMaxWriteDepth) return "W-";
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  std::string out = v.Accept(writer) ? "W" : "W!";
  Hex(&out, buffer.GetString(), buffer.GetSize());
  return out;
}

}  // namespace

int main() {
  char mode;
  size_t length;
  std::vector<char> body;
  while (std::fscanf(stdin, " %c %zu", &mode, &length) == 2) {
    if (std::fgetc(stdin) != '\n') return 2;
    body.resize(length + 1);
    if (length && std::fread(body.data(), 1, length, stdin) != length) return 2;
    rapidjson::Document doc;
    // As TF Serving's ParseJson: a memory stream (not NUL-terminated) wrapped in EncodedInputStream,
    // which skips a UTF-8 byte-order mark.
    rapidjson::MemoryStream ms(body.data(), length);
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(ms);
    doc.ParseStream<kTfServingFlags>(stream);
    std::string line;
    if (doc.HasParseError()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "E %d %zu ", static_cast<int>(doc.GetParseError()), doc.GetErrorOffset());
      line = std::string(buf) + rapidjson::GetParseError_En(doc.GetParseError());
    } else {
      line = mode == 'w' ? Written(doc) : Tokens(doc);
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}
