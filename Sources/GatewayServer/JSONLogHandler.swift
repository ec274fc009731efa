package import GatewayConfig
import GatewayCore
package import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one line per message to standard output, as JSON
/// (`{"time":...,"level":...,"msg":...,<metadata>}`) or as readable text.
///
/// Each line goes out in a single `write(2)`: lines from different event loops never
/// interleave (a pipe write of up to 4 KiB is atomic) and no lock is taken. Values are
/// escaped, so hostile metadata (paths, header values) cannot forge log lines. A value;
/// any thread.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    private let label: String
    private let format: LoggingSettings.Format
    private let fileDescriptor: Int32

    package init(label: String, level: Logger.Level, format: LoggingSettings.Format, fileDescriptor: Int32 = 1) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.fileDescriptor = fileDescriptor
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        var line: String
        switch self.format {
        case .json:
            line = "{\"time\":"
            JSONText.appendQuoted(Self.timestamp(), to: &line)
            line += ",\"level\":"
            JSONText.appendQuoted(event.level.rawValue, to: &line)
            line += ",\"msg\":"
            JSONText.appendQuoted(event.message.description, to: &line)
            for key in merged.keys.sorted() {
                line += ","
                JSONText.appendQuoted(key, to: &line)
                line += ":"
                Self.appendJSON(merged[key]!, to: &line)
            }
            line += "}\n"
        case .text:
            line = "\(Self.timestamp()) \(event.level.rawValue.uppercased()) \(event.message)"
            for key in merged.keys.sorted() {
                line += " \(key)=\(Self.textValue(merged[key]!))"
            }
            line += "\n"
        }
        var bytes = line
        bytes.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(self.fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    private static func appendJSON(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let string):
            JSONText.appendQuoted(string, to: &out)
        case .stringConvertible(let convertible):
            if let number = convertible as? any BinaryInteger {
                out += "\(number)"
            } else {
                JSONText.appendQuoted(convertible.description, to: &out)
            }
        case .array(let values):
            out += "["
            for (index, element) in values.enumerated() {
                if index > 0 { out += "," }
                appendJSON(element, to: &out)
            }
            out += "]"
        case .dictionary(let dictionary):
            out += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                JSONText.appendQuoted(key, to: &out)
                out += ":"
                appendJSON(dictionary[key]!, to: &out)
            }
            out += "}"
        }
    }

    private static func textValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string):
            return string.contains(where: { $0 == " " || $0 == "\"" || $0.isNewline })
                ? JSONText.quoted(string) : string
        case .stringConvertible(let convertible):
            return textValue(.string(convertible.description))
        case .array, .dictionary:
            var out = ""
            appendJSON(value, to: &out)
            return out
        }
    }

    /// RFC 3339 UTC with milliseconds.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(now.tv_nsec / 1_000_000)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

extension Logger {
    /// The gateway's logger for `settings`.
    package static func gateway(_ settings: LoggingSettings, label: String = "dbaudit-gateway") -> Logger {
        let level = Logger.Level(rawValue: settings.level.rawValue) ?? .info
        let format = settings.format
        return Logger(label: label) { label in
            JSONLogHandler(label: label, level: level, format: format)
        }
    }
}
